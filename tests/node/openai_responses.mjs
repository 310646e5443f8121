// The OpenAI Node SDK against the gateway's /v1/responses: non-stream, stream, previous_response_id.
// Prints one JSON line for tests/api/test_node_clients.py to check.
import OpenAI from "openai";

const client = new OpenAI({ baseURL: process.env.GATEWAY_BASE_URL, apiKey: process.env.GATEWAY_API_KEY, maxRetries: 0 });
const model = process.env.GATEWAY_MODEL;

const answer = await client.responses.create({ model, input: "Say hello", instructions: "Be brief." });
const stream = await client.responses.create({ model, input: "Say hello", stream: true });
const types = [];
let streamed = "";
for await (const event of stream) {
  types.push(event.type);
  if (event.type === "response.output_text.delta") streamed += event.delta;
}
const next = await client.responses.create({ model, input: "Again", previous_response_id: answer.id });
console.log(JSON.stringify({ text: answer.output_text, usage: answer.usage, streamed, types,
                             previous: next.previous_response_id, status: next.status }));
