// The Vercel AI SDK's default provider, `openai(model)` (which calls /v1/responses), against the
// gateway: `node vercel_ai.mjs text` runs generateText and streamText, `object` runs generateObject
// with a zod schema. Prints one JSON line for tests/api/test_node_clients.py to check.
import { createOpenAI } from "@ai-sdk/openai";
import { generateObject, generateText, streamText } from "ai";
import { z } from "zod";

const openai = createOpenAI({ baseURL: process.env.GATEWAY_BASE_URL, apiKey: process.env.GATEWAY_API_KEY });
const model = openai(process.env.GATEWAY_MODEL);

if (process.argv[2] === "object") {
  const { object } = await generateObject({ model, schema: z.object({ city: z.string() }), prompt: "Name a city.",
                                            maxRetries: 0 });
  console.log(JSON.stringify({ object }));
} else {
  const generated = await generateText({ model, prompt: "Say hello", maxRetries: 0 });
  const streamed = streamText({ model, prompt: "Say hello", maxRetries: 0 });
  let text = "";
  for await (const piece of streamed.textStream) text += piece;
  console.log(JSON.stringify({ text: generated.text, usage: generated.usage, streamed: text,
                               finishReason: generated.finishReason }));
}
