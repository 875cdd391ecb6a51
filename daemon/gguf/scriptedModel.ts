/**
 * Scripted synthetic models: a GGUF whose greedy output is a chosen script, so tests can
 * assert exact thoughts, tool calls and text through every API family. A random-weight model
 * almost never emits a tool call or a `<think>` block; this one emits exactly what it is told,
 * through node-llama-cpp's chat wrapper, function-calling grammars included.
 *
 * How it is built (llama architecture; one scripted block, after `layers - 1` pass-through ones):
 *   - Vocabulary: the byte vocabulary of the other synthetic models, the chat template's special
 *     tokens, and every word of the script with all its prefixes, scored so that SentencePiece
 *     merging (llama.cpp's tokenizer, emulated here by `tokenize`) rebuilds the words. So the
 *     tokens the model generates are the tokens the tokenizer makes of the same text; that
 *     matters because node-llama-cpp re-renders and re-tokenizes a response at each step of a
 *     function call.
 *   - Token codes: each token has a pseudo-random unit code of CODE_DIM values (any two codes
 *     are nearly orthogonal; the largest overlap is checked). The embedding is a constant bias
 *     plus the token's code in block 0 ("the current token").
 *   - Attention copies the codes of the last `order - 1` positions into blocks 1.. ("the token
 *     k back"): the heads of block k read only the bias, and their rotary phases make the score
 *     peak at distance k with a margin (previousTokenMargin) that sets their scale.
 *   - The feed-forward layer holds one unit per rule "these tokens at these distances -> next
 *     token": the unit fires (SwiGLU far in its positive range) only when every code matches,
 *     and writes the next token's code into the answer block. Each current token gets rules of
 *     the shortest order that makes its continuations unambiguous in the script.
 *   - The output layer scores each token by its code against the answer block.
 * The greedy sequence is simulated with the same arithmetic before anything is written; a script
 * that needs a longer context than MAX_ORDER tokens, or whose text the tokenizer would cut
 * differently than the words, is refused with the place named.
 *
 * Generation starts from the chat template's generation prompt, so whatever the conversation,
 * the model answers with the script, then ends the turn. The template family (`family`) decides
 * the template, its special tokens, that prompt and the end-of-turn token:
 *   - qwen3 (default): ChatML turns, `<think>` thoughts and Hermes `<tool_call>` calls, from
 *     `<|im_start|>assistant\n` to `<|im_end|>`; node-llama-cpp resolves its Jinja wrapper.
 *   - llama3: Meta's Llama 3.1 template, from `<|start_header_id|>assistant<|end_header_id|>\n\n`
 *     to `<|eot_id|>`; node-llama-cpp resolves its own Llama3_1ChatWrapper, whose calls are
 *     `<function=name>{...}</function><|eom_id|>`, one per turn (it has no parallel calls), and
 *     which has no thoughts.
 *
 * Pure except writeScriptedModel, which writes the file.
 */

import { errors } from "../../protocol/errors.js";
import { encodeF16 } from "./quant.js";
import { buildByteVocab, CHATML_TOOLS_PREAMBLE } from "./synth.js";
import { GgmlType, GgufValueType, writeGgufFile, type GgufTensorSpec, type GgufValue } from "./writer.js";

/** Bumped whenever the same script would be written differently, so cached files are rebuilt. */
export const SCRIPTED_FORMAT_VERSION = 1;

/** Enough pass-through blocks to split a scripted model over any cluster Hearth plans for. */
const MAX_LAYERS = 64;

const TOKEN_TYPE_NORMAL = 1;
const TOKEN_TYPE_BYTE = 6;
const TOKEN_TYPE_CONTROL = 3;
const TOKEN_TYPE_USER_DEFINED = 4;

/**
 * Qwen3's chat template in the parts node-llama-cpp reads: ChatML turns, Hermes tool calls in
 * `<tool_call>` tags, `<think>` reasoning (`enable_thinking` false renders an empty thought, as
 * Qwen3's does), and reasoning of past turns left out. With it node-llama-cpp resolves its
 * Jinja wrapper, which extracts the tool-call syntax and the `<think>\n … \n</think>` segment.
 */
export const SCRIPTED_CHAT_TEMPLATE = [
  ...CHATML_TOOLS_PREAMBLE,
  "{%- for message in messages %}",
  "    {%- if (message.role == \"user\") or (message.role == \"system\" and not loop.first) %}",
  "        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}",
  "    {%- elif message.role == \"assistant\" %}",
  "        {%- set content = message.content %}",
  "        {%- if '</think>' in content %}",
  "            {%- set content = content.split('</think>')[-1].lstrip('\\n') %}",
  "        {%- endif %}",
  "        {{- '<|im_start|>' + message.role + '\\n' + content }}",
  "        {%- if message.tool_calls %}",
  "            {%- for tool_call in message.tool_calls %}",
  "                {%- if (loop.first and content) or (not loop.first) %}",
  "                    {{- '\\n' }}",
  "                {%- endif %}",
  "                {%- if tool_call.function %}",
  "                    {%- set tool_call = tool_call.function %}",
  "                {%- endif %}",
  "                {{- '<tool_call>\\n{\"name\": \"' }}",
  "                {{- tool_call.name }}",
  "                {{- '\", \"arguments\": ' }}",
  "                {%- if tool_call.arguments is string %}",
  "                    {{- tool_call.arguments }}",
  "                {%- else %}",
  "                    {{- tool_call.arguments | tojson }}",
  "                {%- endif %}",
  "                {{- '}\\n</tool_call>' }}",
  "            {%- endfor %}",
  "        {%- endif %}",
  "        {{- '<|im_end|>\\n' }}",
  "    {%- elif message.role == \"tool\" %}",
  "        {%- if loop.first or (messages[loop.index0 - 1].role != \"tool\") %}",
  "            {{- '<|im_start|>user' }}",
  "        {%- endif %}",
  "        {{- '\\n<tool_response>\\n' }}",
  "        {{- message.content }}",
  "        {{- '\\n</tool_response>' }}",
  "        {%- if loop.last or (messages[loop.index0 + 1].role != \"tool\") %}",
  "            {{- '<|im_end|>\\n' }}",
  "        {%- endif %}",
  "    {%- endif %}",
  "{%- endfor %}",
  "{%- if add_generation_prompt %}",
  "    {{- '<|im_start|>assistant\\n' }}",
  "    {%- if enable_thinking is defined and enable_thinking is false %}",
  "        {{- '<think>\\n\\n</think>\\n\\n' }}",
  "    {%- endif %}",
  "{%- endif %}",
].join("\n");

/**
 * Meta's Llama 3.1 Instruct chat template, verbatim (tool calls as JSON, `<|python_tag|>` for
 * built-in tools). node-llama-cpp finds its own Llama3_1ChatWrapper renders plain chats the
 * same way and uses that instead, with the wrapper's `<function=name>{...}</function>` calls.
 */
export const LLAMA3_1_CHAT_TEMPLATE = String.raw`{{- bos_token }}
{%- if custom_tools is defined %}
    {%- set tools = custom_tools %}
{%- endif %}
{%- if not tools_in_user_message is defined %}
    {%- set tools_in_user_message = true %}
{%- endif %}
{%- if not date_string is defined %}
    {%- set date_string = "26 Jul 2024" %}
{%- endif %}
{%- if not tools is defined %}
    {%- set tools = none %}
{%- endif %}

{#- This block extracts the system message, so we can slot it into the right place. #}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}

{#- System message + builtin tools #}
{{- "<|start_header_id|>system<|end_header_id|>\n\n" }}
{%- if builtin_tools is defined or tools is not none %}
    {{- "Environment: ipython\n" }}
{%- endif %}
{%- if builtin_tools is defined %}
    {{- "Tools: " + builtin_tools | reject('equalto', 'code_interpreter') | join(", ") + "\n\n"}}
{%- endif %}
{{- "Cutting Knowledge Date: December 2023\n" }}
{{- "Today Date: " + date_string + "\n\n" }}
{%- if tools is not none and not tools_in_user_message %}
    {{- "You have access to the following functions. To call a function, please respond with JSON for a function call." }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\n\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\n\n" }}
    {%- endfor %}
{%- endif %}
{{- system_message }}
{{- "<|eot_id|>" }}

{#- Custom tools are passed in a user message with some extra guidance #}
{%- if tools_in_user_message and not tools is none %}
    {#- Extract the first user message so we can plug it in here #}
    {%- if messages | length != 0 %}
        {%- set first_user_message = messages[0]['content']|trim %}
        {%- set messages = messages[1:] %}
    {%- else %}
        {{- raise_exception("Cannot put tools in the first user message when there's no first user message!") }}
{%- endif %}
    {{- '<|start_header_id|>user<|end_header_id|>\n\n' -}}
    {{- "Given the following functions, please respond with a JSON for a function call " }}
    {{- "with its proper arguments that best answers the given prompt.\n\n" }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\n\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\n\n" }}
    {%- endfor %}
    {{- first_user_message + "<|eot_id|>"}}
{%- endif %}

{%- for message in messages %}
    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}
        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' }}
    {%- elif 'tool_calls' in message %}
        {%- if not message.tool_calls|length == 1 %}
            {{- raise_exception("This model only supports single tool-calls at once!") }}
        {%- endif %}
        {%- set tool_call = message.tool_calls[0].function %}
        {%- if builtin_tools is defined and tool_call.name in builtin_tools %}
            {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' -}}
            {{- "<|python_tag|>" + tool_call.name + ".call(" }}
            {%- for arg_name, arg_val in tool_call.arguments | items %}
                {{- arg_name + '="' + arg_val + '"' }}
                {%- if not loop.last %}
                    {{- ", " }}
                {%- endif %}
                {%- endfor %}
            {{- ")" }}
        {%- else  %}
            {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' -}}
            {{- '{"name": "' + tool_call.name + '", ' }}
            {{- '"parameters": ' }}
            {{- tool_call.arguments | tojson }}
            {{- "}" }}
        {%- endif %}
        {%- if builtin_tools is defined %}
            {#- This means we're in ipython mode #}
            {{- "<|eom_id|>" }}
        {%- else %}
            {{- "<|eot_id|>" }}
        {%- endif %}
    {%- elif message.role == "tool" or message.role == "ipython" %}
        {{- "<|start_header_id|>ipython<|end_header_id|>\n\n" }}
        {%- if message.content is mapping or message.content is iterable %}
            {{- message.content | tojson }}
        {%- else %}
            {{- message.content }}
        {%- endif %}
        {{- "<|eot_id|>" }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
{%- endif %}
`;

export const SCRIPTED_FAMILIES = ["qwen3", "llama3"] as const;
export type ScriptedFamily = (typeof SCRIPTED_FAMILIES)[number];

export function isScriptedFamily(value: string): value is ScriptedFamily {
  return (SCRIPTED_FAMILIES as readonly string[]).includes(value);
}

/** What a template family fixes about a scripted model besides its weights. */
interface TemplateFamily {
  chatTemplate: string;
  /** Parsed as one token each, rendered as nothing (turn markers). */
  control: readonly string[];
  /** Parsed as one token each, rendered as their text. */
  markup: readonly string[];
  bos: string;
  endOfTurn: string;
  /** What the template renders before the model's turn; generation continues from it. */
  generationPrompt: string;
  /**
   * Text the chat wrapper renders itself around a tool call (the call syntax): a word never
   * spans one of these, so the tokens the model generates end where the wrapper's do.
   */
  syntaxWords: readonly string[];
  /**
   * Where a call ends with text of the wrapper's before a special token (Hermes: the `}` of
   * `}\n</tool_call>`): that text is not part of the arguments, which a JSON grammar closes, so
   * it stands alone as a word.
   */
  callClose?: { before: string; text: string; word: string };
}

const FAMILIES: Record<ScriptedFamily, TemplateFamily> = {
  qwen3: {
    chatTemplate: SCRIPTED_CHAT_TEMPLATE,
    control: ["<|im_start|>", "<|im_end|>", "<|endoftext|>"],
    markup: ["<think>", "</think>", "<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>"],
    // The byte vocabulary's, as the random-weight synthetic models have it.
    bos: "<s>",
    endOfTurn: "<|im_end|>",
    generationPrompt: "<|im_start|>assistant\n",
    syntaxWords: ['{"name": "', '", "arguments": '],
    callClose: { before: "</tool_call>", text: "}\n", word: "}" },
  },
  llama3: {
    chatTemplate: LLAMA3_1_CHAT_TEMPLATE,
    // Llama3_1ChatWrapper is chosen only if `<|eom_id|>` is one special token.
    control: ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|eom_id|>", "<|python_tag|>"],
    markup: [],
    bos: "<|begin_of_text|>",
    endOfTurn: "<|eot_id|>",
    generationPrompt: "<|start_header_id|>assistant<|end_header_id|>\n\n",
    // Plain text in Llama 3.1's vocabulary too. `>` follows the function name; it stands alone
    // wherever it appears, so the name never merges with it.
    syntaxWords: ["<function=", "</function>", ">"],
  },
};

/** The family's special tokens: control and markup, each parsed as one token. */
function specialsOf(family: TemplateFamily): readonly string[] {
  return [...family.control, ...family.markup];
}

const SPM_SPACE = "\u2581";

/** The script's words: special tokens stand alone, newlines are left to bytes, syntax words and words with their leading space. */
export function scriptWords(script: string, familyName: ScriptedFamily = "qwen3"): string[] {
  const family = FAMILIES[familyName];
  const specials = specialsOf(family);
  const words: string[] = [];
  const pushPlain = (text: string): void => {
    let remaining = text;
    while (remaining !== "") {
      const hit = family.syntaxWords.map((syntax) => ({ syntax, index: remaining.indexOf(syntax) })).filter((entry) => entry.index >= 0).sort((a, b) => a.index - b.index)[0];
      const plain = hit === undefined ? remaining : remaining.slice(0, hit.index);
      words.push(...(plain.match(/ *[^ \n]+| +/g) ?? []));
      if (hit === undefined) return;
      words.push(hit.syntax);
      remaining = remaining.slice(hit.index + hit.syntax.length);
    }
  };
  const parts = splitSpecials(script, specials);
  const close = family.callClose;
  parts.forEach((part, index) => {
    if (specials.includes(part)) return;
    const beforeCallEnd = close !== undefined && parts[index + 1] === close.before && part.endsWith(close.text);
    const text = beforeCallEnd ? part.slice(0, -close.text.length) : part;
    for (const line of text.split("\n")) pushPlain(line);
    if (beforeCallEnd) words.push(close.word);
  });
  return words;
}

/** Text cut at special tokens, the specials kept as their own parts. */
function splitSpecials(text: string, specials: readonly string[]): string[] {
  const parts: string[] = [];
  let rest = text;
  for (;;) {
    const hit = specials.map((token) => ({ token, index: rest.indexOf(token) })).filter((entry) => entry.index >= 0).sort((a, b) => a.index - b.index)[0];
    if (hit === undefined) {
      if (rest !== "") parts.push(rest);
      return parts;
    }
    if (hit.index > 0) parts.push(rest.slice(0, hit.index));
    parts.push(hit.token);
    rest = rest.slice(hit.index + hit.token.length);
  }
}

export interface Vocabulary {
  family: ScriptedFamily;
  tokens: string[];
  scores: number[];
  types: number[];
  ids: Map<string, number>;
}

export function buildVocabulary(script: string, familyName: ScriptedFamily = "qwen3"): Vocabulary {
  const family = FAMILIES[familyName];
  const base = buildByteVocab();
  const vocab: Vocabulary = { family: familyName, tokens: [...base.tokens], scores: [...base.scores], types: [...base.types], ids: new Map() };
  base.tokens.forEach((token, id) => vocab.ids.set(token, id));
  const add = (text: string, score: number, type: number): void => {
    if (vocab.ids.has(text)) return;
    vocab.ids.set(text, vocab.tokens.length);
    vocab.tokens.push(text);
    vocab.scores.push(score);
    vocab.types.push(type);
  };
  for (const token of family.control) add(token, 0, TOKEN_TYPE_CONTROL);
  for (const token of family.markup) add(token, 0, TOKEN_TYPE_USER_DEFINED);
  // Longer pieces score higher, so merging grows a word from its start; llama.cpp wants each text once.
  for (const word of scriptWords(script, familyName)) {
    const text = word.replaceAll(" ", SPM_SPACE);
    for (let length = 2; length <= [...text].length; length++) add([...text].slice(0, length).join(""), length, TOKEN_TYPE_NORMAL);
  }
  return vocab;
}

/**
 * llama.cpp's SentencePiece tokenizer (llm_tokenizer_spm) over this vocabulary, without the
 * space prefix: spaces become `▁`, then adjacent pieces whose join is a token merge, the
 * highest score first (the leftmost on ties), and what is left without a token falls back to
 * bytes. Special tokens are parsed as such.
 */
export function tokenize(vocab: Vocabulary, text: string): number[] {
  const specials = specialsOf(FAMILIES[vocab.family]);
  const tokens: number[] = [];
  for (const part of splitSpecials(text, specials)) {
    const special = vocab.ids.get(part);
    if (specials.includes(part) && special !== undefined) tokens.push(special);
    else tokens.push(...tokenizePlain(vocab, part));
  }
  return tokens;
}

function tokenizePlain(vocab: Vocabulary, text: string): number[] {
  const symbols = [...text.replaceAll(" ", SPM_SPACE)];
  for (;;) {
    let best: { index: number; score: number } | undefined;
    for (let i = 0; i + 1 < symbols.length; i++) {
      const id = vocab.ids.get(symbols[i]! + symbols[i + 1]!);
      if (id === undefined || vocab.types[id] === TOKEN_TYPE_BYTE) continue;
      const score = vocab.scores[id]!;
      if (best === undefined || score > best.score) best = { index: i, score };
    }
    if (best === undefined) break;
    symbols.splice(best.index, 2, symbols[best.index]! + symbols[best.index + 1]!);
  }
  const tokens: number[] = [];
  for (const symbol of symbols) {
    const id = vocab.ids.get(symbol);
    if (id !== undefined && vocab.types[id] !== TOKEN_TYPE_BYTE) tokens.push(id);
    else for (const byte of Buffer.from(symbol, "utf8")) tokens.push(vocab.ids.get(`<0x${byte.toString(16).toUpperCase().padStart(2, "0")}>`)!);
  }
  return tokens;
}

/** Tokens from the generation prompt on: what the model sees last, then what it must say. */
interface Realised {
  sequence: number[];
  /** Index in `sequence` of the prompt's last token; generation predicts sequence[i + 1] from i on. */
  start: number;
}

function realise(vocab: Vocabulary, script: string): Realised {
  const { generationPrompt, endOfTurn } = FAMILIES[vocab.family];
  const prompt = tokenize(vocab, generationPrompt);
  const full = tokenize(vocab, generationPrompt + script + endOfTurn);
  if (full.slice(0, prompt.length).join() !== prompt.join()) throw unencodable("the script's first word merges with the generation prompt");
  // node-llama-cpp re-tokenizes the response at each step of a tool call: every prefix the
  // model has generated must tokenize into the tokens it generated.
  const text = generationPrompt + script + endOfTurn;
  let offset = 0;
  for (let i = 0; i < full.length; i++) {
    offset += vocabText(vocab, full[i]!).length;
    const again = tokenize(vocab, text.slice(0, offset));
    if (again.join() !== full.slice(0, i + 1).join()) throw unencodable(`the tokenizer cuts the text up to ${JSON.stringify(text.slice(Math.max(0, offset - 20), offset))} differently from the words`);
  }
  return { sequence: full, start: prompt.length - 1 };
}

/** The text a token stands for, as the tokenizer consumed it. */
function vocabText(vocab: Vocabulary, token: number): string {
  const text = vocab.tokens[token]!;
  if (vocab.types[token] === TOKEN_TYPE_BYTE) return String.fromCharCode(Number.parseInt(text.slice(3, 5), 16));
  return text.replaceAll(SPM_SPACE, " ");
}

function unencodable(why: string): Error {
  return errors.cliUsage(`the script cannot be encoded: ${why}`);
}

/** Longest context a rule looks at: the current token and up to MAX_ORDER - 1 before it. */
export const MAX_ORDER = 5;

interface Rule {
  /** Tokens at distance 0 (current), 1, ... */
  context: number[];
  next: number;
}

/**
 * One rule per position of the script, at the shortest order that makes every continuation of
 * its current token unambiguous.
 */
function rulesOf(realised: Realised): Rule[] {
  const { sequence, start } = realised;
  const positions = new Map<number, number[]>();
  for (let i = start; i < sequence.length - 1; i++) {
    const list = positions.get(sequence[i]!) ?? [];
    list.push(i);
    positions.set(sequence[i]!, list);
  }
  const contextAt = (i: number, order: number): number[] => Array.from({ length: order }, (_, k) => sequence[i - k] ?? -1);
  const rules: Rule[] = [];
  for (const [, at] of positions) {
    let chosen: number | undefined;
    for (let order = 1; order <= MAX_ORDER && chosen === undefined; order++) {
      const seen = new Map<string, number>();
      const consistent = at.every((i) => {
        const key = contextAt(i, order).join(" ");
        const known = seen.get(key);
        seen.set(key, sequence[i + 1]!);
        return known === undefined || known === sequence[i + 1];
      });
      if (consistent && at.every((i) => i - (order - 1) >= 0)) chosen = order;
    }
    if (chosen === undefined) throw unencodable(`at tokens ${at.map((i) => i - start).join(", ")} the same ${MAX_ORDER} tokens in a row continue differently; vary the text before one of them`);
    const added = new Set<string>();
    for (const i of at) {
      const context = contextAt(i, chosen);
      const key = context.join(" ");
      if (added.has(key)) continue;
      added.add(key);
      rules.push({ context, next: sequence[i + 1]! });
    }
  }
  return rules;
}

const CODE_DIM = 256;
/** Two codes may overlap this much at most, so a rule fires only when all its tokens match. */
const MAX_CODE_OVERLAP = 0.35;

/** Deterministic ±1/sqrt(CODE_DIM) codes, one per token, nearly orthogonal (checked). */
function tokenCodes(count: number): Float64Array[] {
  let state = 0x9e3779b9;
  const next = (): number => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), state | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
  const scale = 1 / Math.sqrt(CODE_DIM);
  const codes = Array.from({ length: count }, () => Float64Array.from({ length: CODE_DIM }, () => ((next() & 1) === 0 ? scale : -scale)));
  return codes;
}

function dot(a: ArrayLike<number>, b: ArrayLike<number>, bOffset = 0): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += a[i]! * b[bOffset + i]!;
  return sum;
}

/** The largest overlap between the codes of `tokens` (only tokens that take part in rules matter). */
function largestOverlap(codes: readonly Float64Array[], tokens: readonly number[]): number {
  let largest = 0;
  for (let i = 0; i < tokens.length; i++) for (let j = i + 1; j < tokens.length; j++) largest = Math.max(largest, Math.abs(dot(codes[tokens[i]!]!, codes[tokens[j]!]!)));
  return largest;
}

const HEAD_DIM = 64;
const ROPE_BASE = 10_000;
/** Score margin (pre-softmax) of the wanted distance over every other, so attention copies that position alone. */
const ATTENTION_MARGIN = 32;
/** The bias dimension's value: large, so the RMS norm barely depends on how many blocks are filled. */
const BIAS = 30;
/** How far into SwiGLU's positive range a fully matched rule goes (and how far negative a near miss). */
const RULE_SHARPNESS = 40;

/** The smallest score margin of distance `peak` over any other distance within the context, at unit scale. */
export function distanceMargin(contextLength: number, peak = 1): number {
  const frequencies = Array.from({ length: HEAD_DIM / 2 }, (_, i) => ROPE_BASE ** (-(2 * i) / HEAD_DIM));
  let least = Infinity;
  for (let distance = 0; distance < contextLength; distance++) {
    if (distance === peak) continue;
    least = Math.min(least, frequencies.reduce((sum, theta) => sum + (1 - Math.cos((distance - peak) * theta)), 0));
  }
  return least;
}

export interface ScriptedModelOptions {
  /** What the model answers with, as text; special tokens (`<think>`, `<tool_call>`, ...) appear literally. */
  script: string;
  /** The chat template family (default qwen3): template, special tokens, generation prompt, end of turn. */
  family?: ScriptedFamily;
  contextLength?: number;
  name?: string;
  chatTemplate?: string;
  /**
   * Blocks in all (default 1). The script lives in the last block; the ones before it have zero
   * attention and feed-forward outputs, so they add exactly 0 to the residual. They exist so a
   * scripted model can be split over nodes with the scripted arithmetic on the last stage.
   */
  layers?: number;
}

export interface ScriptedModelPlan {
  vocabSize: number;
  embd: number;
  /** Tokens of context the rules look at (1: the current token only). */
  order: number;
  rules: number;
  /** The tokens generated under greedy decoding, end of turn included. */
  generated: string[];
}

type Tensor = GgufTensorSpec & { data: Float32Array };

interface Built {
  plan: ScriptedModelPlan;
  metadata: Map<string, GgufValue>;
  tensors: Tensor[];
}

function build(options: ScriptedModelOptions): Built {
  const contextLength = options.contextLength ?? 4096;
  const layers = options.layers ?? 1;
  if (!Number.isInteger(layers) || layers < 1 || layers > MAX_LAYERS) throw errors.cliUsage(`a scripted model has 1 to ${MAX_LAYERS} layers, not ${layers}`, { param: "layers" });
  const scriptBlock = `blk.${layers - 1}`;
  const familyName = options.family ?? "qwen3";
  const family = FAMILIES[familyName];
  const vocab = buildVocabulary(options.script, familyName);
  const vocabSize = vocab.tokens.length;
  const realised = realise(vocab, options.script);
  const rules = rulesOf(realised);
  const order = Math.max(...rules.map((rule) => rule.context.length));
  const codes = tokenCodes(vocabSize);
  const involved = [...new Set(rules.flatMap((rule) => [...rule.context, rule.next]).filter((token) => token >= 0))];
  const overlap = largestOverlap(codes, involved);
  if (overlap > MAX_CODE_OVERLAP) throw unencodable(`token codes overlap ${overlap.toFixed(2)}, more than ${MAX_CODE_OVERLAP}`);

  // Residual layout: bias, one block per distance 0 .. order-1, the answer block; whole heads.
  const blockStart = (k: number): number => 1 + k * CODE_DIM;
  const answerStart = blockStart(order);
  const embd = Math.ceil((answerStart + CODE_DIM) / HEAD_DIM) * HEAD_DIM;
  const heads = embd / HEAD_DIM;
  const headsPerBlock = CODE_DIM / HEAD_DIM;
  if ((order - 1) * headsPerBlock > heads) throw unencodable("too few heads for the context");
  const feedForward = Math.max(HEAD_DIM, Math.ceil(rules.length / 32) * 32);

  const matrix = (name: string, rows: number, cols: number, type: GgmlType = GgmlType.F32): Tensor => ({
    name,
    dims: [cols, rows],
    type,
    byteLength: rows * cols * (type === GgmlType.F16 ? 2 : 4),
    data: new Float32Array(rows * cols),
  });
  const vector = (name: string, length: number): Tensor => ({ name, dims: [length], type: GgmlType.F32, byteLength: length * 4, data: new Float32Array(length).fill(1) });

  const embedding = matrix("token_embd.weight", vocabSize, embd);
  for (let token = 0; token < vocabSize; token++) {
    embedding.data[token * embd] = BIAS;
    codes[token]!.forEach((value, i) => (embedding.data[token * embd + blockStart(0) + i] = value));
  }
  // After RMS norm an entry x becomes x / rms; rms barely moves with the number of filled blocks.
  const norm = (filledBlocks: number): number => Math.sqrt(embd / (BIAS * BIAS + filledBlocks));
  const attnNorm = norm(1);
  const q = matrix(`${scriptBlock}.attn_q.weight`, embd, embd, GgmlType.F16);
  const k = matrix(`${scriptBlock}.attn_k.weight`, embd, embd, GgmlType.F16);
  const v = matrix(`${scriptBlock}.attn_v.weight`, embd, embd, GgmlType.F16);
  const o = matrix(`${scriptBlock}.attn_output.weight`, embd, embd, GgmlType.F16);
  for (let distance = 1; distance < order; distance++) {
    // q·k per pair = s^2 cos((d - distance)·θ): the score peaks at the wanted distance.
    const pairScale = Math.sqrt((ATTENTION_MARGIN / distanceMargin(contextLength, distance)) * Math.sqrt(HEAD_DIM));
    for (let part = 0; part < headsPerBlock; part++) {
      const head = (distance - 1) * headsPerBlock + part;
      for (let pair = 0; pair < HEAD_DIM / 2; pair++) {
        const theta = ROPE_BASE ** (-(2 * pair) / HEAD_DIM);
        const row = head * HEAD_DIM + 2 * pair;
        // Read the bias (column 0) only, undoing the norm's scale.
        q.data[row * embd] = (pairScale * Math.cos(-distance * theta)) / (BIAS * attnNorm);
        q.data[(row + 1) * embd] = (pairScale * Math.sin(-distance * theta)) / (BIAS * attnNorm);
        k.data[row * embd] = pairScale / (BIAS * attnNorm);
      }
      // Values: this head's share of the current token's code, moved to block `distance`.
      for (let j = 0; j < HEAD_DIM; j++) {
        const row = head * HEAD_DIM + j;
        const codeIndex = part * HEAD_DIM + j;
        v.data[row * embd + blockStart(0) + codeIndex] = 1 / attnNorm;
        o.data[(blockStart(distance) + codeIndex) * embd + row] = 1;
      }
    }
  }
  // Feed-forward: one unit per rule. gate = sharpness·(matches - order + 0.5), up = 1.
  const ffnNorm = norm(order);
  const gate = matrix(`${scriptBlock}.ffn_gate.weight`, feedForward, embd);
  const up = matrix(`${scriptBlock}.ffn_up.weight`, feedForward, embd);
  const down = matrix(`${scriptBlock}.ffn_down.weight`, embd, feedForward);
  rules.forEach((rule, unit) => {
    rule.context.forEach((token, distance) => {
      codes[token]!.forEach((value, i) => (gate.data[unit * embd + blockStart(distance) + i] = (RULE_SHARPNESS * value) / ffnNorm));
    });
    gate.data[unit * embd] = (-RULE_SHARPNESS * (rule.context.length - 0.5)) / (BIAS * ffnNorm);
    up.data[unit * embd] = 1 / (BIAS * ffnNorm);
    codes[rule.next]!.forEach((value, i) => (down.data[(answerStart + i) * feedForward + unit] = value));
  });
  const output = matrix("output.weight", vocabSize, embd);
  for (let token = 0; token < vocabSize; token++) codes[token]!.forEach((value, i) => (output.data[token * embd + answerStart + i] = value));

  verify(realised, rules, codes, order);

  // Zero output projections make a block an exact identity on the residual.
  const passThrough = (block: string): Tensor[] => [
    vector(`${block}.attn_norm.weight`, embd),
    matrix(`${block}.attn_q.weight`, embd, embd, GgmlType.F16),
    matrix(`${block}.attn_k.weight`, embd, embd, GgmlType.F16),
    matrix(`${block}.attn_v.weight`, embd, embd, GgmlType.F16),
    matrix(`${block}.attn_output.weight`, embd, embd, GgmlType.F16),
    vector(`${block}.ffn_norm.weight`, embd),
    matrix(`${block}.ffn_gate.weight`, feedForward, embd),
    matrix(`${block}.ffn_up.weight`, feedForward, embd),
    matrix(`${block}.ffn_down.weight`, embd, feedForward),
  ];
  const tensors = [
    embedding,
    vector("output_norm.weight", embd),
    output,
    ...Array.from({ length: layers - 1 }, (_, index) => passThrough(`blk.${index}`)).flat(),
    vector(`${scriptBlock}.attn_norm.weight`, embd),
    q,
    k,
    v,
    o,
    vector(`${scriptBlock}.ffn_norm.weight`, embd),
    gate,
    up,
    down,
  ];
  const u32 = (value: number): GgufValue => ({ type: GgufValueType.UINT32, value });
  const f32 = (value: number): GgufValue => ({ type: GgufValueType.FLOAT32, value });
  const str = (value: string): GgufValue => ({ type: GgufValueType.STRING, value });
  const bool = (value: boolean): GgufValue => ({ type: GgufValueType.BOOL, value });
  const metadata = new Map<string, GgufValue>([
    ["general.architecture", str("llama")],
    ["general.name", str(options.name ?? "hearth-scripted")],
    ["general.file_type", u32(1)],
    ["llama.context_length", u32(contextLength)],
    ["llama.embedding_length", u32(embd)],
    ["llama.block_count", u32(layers)],
    ["llama.feed_forward_length", u32(feedForward)],
    ["llama.attention.head_count", u32(heads)],
    ["llama.attention.head_count_kv", u32(heads)],
    ["llama.attention.layer_norm_rms_epsilon", f32(1e-6)],
    ["llama.rope.freq_base", f32(ROPE_BASE)],
    ["llama.rope.dimension_count", u32(HEAD_DIM)],
    ["llama.vocab_size", u32(vocabSize)],
    ["tokenizer.ggml.model", str("llama")],
    ["tokenizer.ggml.tokens", { type: GgufValueType.ARRAY, itemType: GgufValueType.STRING, value: vocab.tokens }],
    ["tokenizer.ggml.scores", { type: GgufValueType.ARRAY, itemType: GgufValueType.FLOAT32, value: vocab.scores }],
    ["tokenizer.ggml.token_type", { type: GgufValueType.ARRAY, itemType: GgufValueType.INT32, value: vocab.types }],
    ["tokenizer.ggml.bos_token_id", u32(vocab.ids.get(family.bos)!)],
    ["tokenizer.ggml.eos_token_id", u32(vocab.ids.get(family.endOfTurn)!)],
    ["tokenizer.ggml.unknown_token_id", u32(0)],
    ["tokenizer.ggml.add_bos_token", bool(false)],
    ["tokenizer.ggml.add_eos_token", bool(false)],
    // Text after a special token starts without an invented space, as in byte-level BPE vocabularies:
    // the wrapper's `<think>\\n` then tokenizes to the two tokens the script generates.
    ["tokenizer.ggml.add_space_prefix", bool(false)],
    ["tokenizer.chat_template", str(options.chatTemplate ?? family.chatTemplate)],
  ]);
  const plan: ScriptedModelPlan = { vocabSize, embd, order, rules: rules.length, generated: realised.sequence.slice(realised.start + 1).map((token) => vocab.tokens[token]!) };
  return { plan, metadata, tensors };
}

/**
 * Walks the script with the rules' arithmetic (the codes of the context against each rule, the
 * answer against each token) and checks that greedy decoding follows it, with a margin.
 */
function verify(realised: Realised, rules: readonly Rule[], codes: readonly Float64Array[], order: number): void {
  const { sequence, start } = realised;
  const silu = (z: number): number => z / (1 + Math.exp(-z));
  for (let i = start; i < sequence.length - 1; i++) {
    const context = Array.from({ length: order }, (_, k) => sequence[i - k]);
    const answer = new Float64Array(CODE_DIM);
    for (const rule of rules) {
      let matches = 0;
      rule.context.forEach((token, distance) => {
        const actual = context[distance];
        if (actual !== undefined) matches += dot(codes[token]!, codes[actual]!);
      });
      const fired = silu(RULE_SHARPNESS * (matches - rule.context.length + 0.5));
      codes[rule.next]!.forEach((value, d) => (answer[d] = answer[d]! + fired * value));
    }
    let best = -Infinity;
    let bestToken = -1;
    let second = -Infinity;
    codes.forEach((code, token) => {
      const logit = dot(code, answer);
      if (logit > best) {
        second = best;
        best = logit;
        bestToken = token;
      } else if (logit > second) second = logit;
    });
    if (bestToken !== sequence[i + 1] || best - second < RULE_SHARPNESS * 0.2) throw unencodable(`at token ${i - start} greedy decoding would not continue as written`);
  }
}

/** What writeScriptedModel would write, without writing it (refuses a script it cannot encode). */
export function planScriptedModel(options: ScriptedModelOptions): ScriptedModelPlan {
  return build(options).plan;
}

export async function writeScriptedModel(filePath: string, options: ScriptedModelOptions): Promise<ScriptedModelPlan> {
  const { plan, metadata, tensors } = build(options);
  await writeGgufFile(filePath, metadata, tensors, (_tensor, index) => {
    const { data, type } = tensors[index]!;
    return type === GgmlType.F16 ? encodeF16(data) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  });
  return plan;
}
