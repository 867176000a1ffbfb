<?php
// A business webhook for callbot in PHP, standard library only.
//
// Run:  WEBHOOK_SECRET=whsec_... php -S 127.0.0.1:9000 examples/webhook.php
// It checks X-Callbot-Signature (HMAC-SHA256 over "<t>.<body>", 5-minute tolerance), then:
// - webhook-mode turns: books a table when the caller mentions one, hangs up on "bye", and
//   otherwise lets the bot speak the LLM's suggestion ({"action": "continue"}, no "say");
// - LLM-mode tool calls ("type": "tool_call"): answers check_availability with {"result": ...};
// - LLM-mode turn notices (they carry "reply"): logs them.

function verified(string $header, string $body, string $secret): bool {
    $parts = [];
    foreach (explode(',', $header) as $p) {
        $kv = explode('=', $p, 2);
        if (count($kv) === 2) {
            $parts[$kv[0]] = $kv[1];
        }
    }
    if (!isset($parts['t']) || !ctype_digit($parts['t']) || abs(time() - (int)$parts['t']) > 300) {
        return false;
    }
    $want = hash_hmac('sha256', $parts['t'] . '.' . $body, $secret);
    return hash_equals($want, $parts['v1'] ?? '');
}

function answer_for(array $turn, string $key): array {
    $log = fopen('php://stderr', 'w');
    if (($turn['type'] ?? '') === 'tool_call') {
        fwrite($log, "tool {$turn['name']}(" . json_encode($turn['arguments']) . ") ($key)\n");
        return $turn['name'] === 'check_availability'
            ? ['result' => ['available' => true, 'times' => ['18:30', '20:45']]]
            : ['error' => "unknown tool {$turn['name']}"];
    }
    if (array_key_exists('reply', $turn)) {
        fwrite($log, "turn {$turn['turn']} ($key): " . json_encode($turn['user_text']) . ' -> ' . json_encode($turn['reply']) . "\n");
        return [];
    }
    $text = strtolower($turn['user_text'] ?? '');
    fwrite($log, "turn {$turn['turn']} ($key): " . json_encode($turn['user_text']) . '; suggestion ' . json_encode($turn['llm_suggestion'] ?? null) . "\n");
    if (str_contains($text, 'bye')) {
        return ['say' => 'Thank you for calling. Goodbye!', 'action' => 'hangup'];
    }
    if (str_contains($text, 'table')) {
        return ['say' => 'Certainly. I have booked that table for you. Is there anything else?'];
    }
    if (!empty($turn['llm_suggestion'])) {
        return ['action' => 'continue']; // speak the LLM's suggestion
    }
    return ['say' => 'I can book a table for you. For how many people, and when?'];
}

$body = file_get_contents('php://input');
$secret = getenv('WEBHOOK_SECRET') ?: '';
if ($_SERVER['REQUEST_METHOD'] !== 'POST' || !verified($_SERVER['HTTP_X_CALLBOT_SIGNATURE'] ?? '', $body, $secret)) {
    http_response_code(401);
    exit;
}
$turn = json_decode($body, true);
if (!is_array($turn)) {
    http_response_code(400);
    exit;
}
$out = answer_for($turn, $_SERVER['HTTP_IDEMPOTENCY_KEY'] ?? '');
header('Content-Type: application/json');
// An empty answer is the JSON object {}, not the list [].
echo $out === [] ? '{}' : json_encode($out);
