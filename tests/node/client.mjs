// The official AI SDK client against a running recoup-api: `node client.mjs <ai folder>`.
//
// Reads `{baseUrl, headers, scenarios: [{name, chatId, sessionId, text, reconnect}]}` on stdin.
// For each scenario it sends the text through `DefaultChatTransport`, reads the answer with
// `readUIMessageStream` (which throws on any chunk the client refuses, and on an `error`
// chunk), and, with `reconnect`, drops the stream after a few updates and resumes it with
// `reconnectToStream`. Prints `[{name, first, error, resumed}]` as JSON on stdout.
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";

const [folder] = process.argv.slice(2);
const require = createRequire(`${folder}/package.json`);
const { DefaultChatTransport, readUIMessageStream } = await import(
  pathToFileURL(require.resolve("ai")).href
);

async function readStdin() {
  const parts = [];
  for await (const part of process.stdin) parts.push(part);
  return Buffer.concat(parts).toString("utf8");
}

async function lastMessage(stream, stopAfter, onStop) {
  let last;
  let updates = 0;
  for await (const message of readUIMessageStream({ stream, terminateOnError: true })) {
    last = message;
    updates += 1;
    if (stopAfter !== undefined && updates >= stopAfter) {
      onStop();
      break;
    }
  }
  return last;
}

async function run(config, scenario) {
  const transport = new DefaultChatTransport({
    api: `${config.baseUrl}/api/chat`,
    headers: config.headers,
    body: { chatId: scenario.chatId, sessionId: scenario.sessionId },
  });
  const messages = [
    { id: `user-${scenario.name}`, role: "user", parts: [{ type: "text", text: scenario.text }] },
  ];
  const result = { name: scenario.name, first: null, error: null, resumed: null };
  const controller = new AbortController();
  try {
    const stream = await transport.sendMessages({
      chatId: scenario.chatId,
      trigger: "submit-message",
      messageId: undefined,
      abortSignal: controller.signal,
      messages,
    });
    const stopAfter = scenario.reconnect ? 3 : undefined;
    result.first = (await lastMessage(stream, stopAfter, () => controller.abort())) ?? null;
  } catch (error) {
    result.error = { name: error?.name ?? "Error", message: String(error?.message ?? error) };
  }
  if (scenario.reconnect) {
    const stream = await transport.reconnectToStream({ chatId: scenario.chatId });
    result.resumed = stream === null ? "no-stream" : ((await lastMessage(stream)) ?? null);
  }
  return result;
}

const config = JSON.parse(await readStdin());
const results = [];
for (const scenario of config.scenarios) results.push(await run(config, scenario));
process.stdout.write(JSON.stringify(results));
