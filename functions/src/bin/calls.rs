//! Lambda entry point of the `calls` function: the same router `callbot serve` mounts, handed to
//! the Lambda runtime (lambda_http). Settings come from the environment the template sets.

use callbot_functions::{Function, lambda};

#[tokio::main]
async fn main() -> Result<(), lambda::Error> {
    lambda::run(Function::Calls).await
}
