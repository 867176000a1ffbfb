//! The Lambda functions' one executable (`bootstrap` in every package): the routes of the function
//! named by `CALLBOT_LAMBDA_ROUTES` (`bots`, `voice`, `calls`), the same routers `callbot serve`
//! mounts, handed to the Lambda runtime; or a worker (`CALLBOT_LAMBDA_EVENTS`). Settings come from
//! the environment the template sets.

use callbot_functions::lambda;

#[tokio::main]
async fn main() -> Result<(), lambda::Error> {
    lambda::run().await
}
