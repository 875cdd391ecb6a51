import { describe, expect, it } from "vitest";
import type { EngineStats } from "../../daemon/engine/types.js";
import { decodeTokensPerSecond, Metrics } from "../../daemon/metrics/Metrics.js";
import { escapeLabelValue, formatValue } from "../../daemon/metrics/prometheusText.js";

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/**
 * A strict reader of the text exposition format 0.0.4: every line must be a HELP, a TYPE or
 * a sample; every sample must belong to a family declared by TYPE before it.
 */
function parseExposition(text: string): { types: Map<string, string>; samples: Sample[] } {
  expect(text.endsWith("\n")).toBe(true);
  const types = new Map<string, string>();
  const samples: Sample[] = [];
  const sampleLine = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$/;
  const labelPair = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\["\\n])*)"(,|$)/y;
  for (const line of text.slice(0, -1).split("\n")) {
    if (line.startsWith("# HELP ")) continue;
    const type = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (type) {
      expect(types.has(type[1]!)).toBe(false);
      types.set(type[1]!, type[2]!);
      continue;
    }
    const match = sampleLine.exec(line);
    if (!match) throw new Error(`not a valid exposition line: ${JSON.stringify(line)}`);
    const labels: Record<string, string> = {};
    const body = match[3] ?? "";
    labelPair.lastIndex = 0;
    while (labelPair.lastIndex < body.length) {
      const pair = labelPair.exec(body);
      if (!pair) throw new Error(`bad labels in ${JSON.stringify(line)}`);
      labels[pair[1]!] = pair[2]!.replace(/\\n/g, "\n").replace(/\\"/g, '"').replace(/\\\\/g, "\\");
    }
    const raw = match[4]!;
    const value = raw === "+Inf" ? Infinity : raw === "-Inf" ? -Infinity : Number(raw);
    expect(Number.isNaN(value) && raw !== "NaN").toBe(false);
    const family = [...types.keys()].find((name) => match[1] === name || (types.get(name) === "histogram" && /^_(bucket|sum|count)$/.test(match[1]!.slice(name.length)) && match[1]!.startsWith(name)));
    if (family === undefined) throw new Error(`sample ${match[1]} has no TYPE line before it`);
    samples.push({ name: match[1]!, labels, value });
  }
  return { types, samples };
}

function find(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  return samples.find((sample) => sample.name === name && Object.entries(labels).every(([key, value]) => sample.labels[key] === value))?.value;
}

const stats: EngineStats = {
  loaded: [
    { modelId: "tiny", placement: "whole", pid: 1, state: "ready", running: 2, queued: 5, lastUsedAt: 0 },
    { modelId: "big", placement: "whole", pid: 2, state: "loading", running: 0, queued: 1, lastUsedAt: 0 },
  ],
};

describe("Prometheus text helpers", () => {
  it("escapes backslash, quote and newline in label values", () => {
    expect(escapeLabelValue('a\\b"c\nd')).toBe('a\\\\b\\"c\\nd');
  });

  it("formats special values", () => {
    expect(formatValue(Infinity)).toBe("+Inf");
    expect(formatValue(-Infinity)).toBe("-Inf");
    expect(formatValue(NaN)).toBe("NaN");
    expect(formatValue(0.25)).toBe("0.25");
  });
});

describe("Metrics", () => {
  it("renders declared families even before anything happened", () => {
    const { types, samples } = parseExposition(new Metrics().render());
    expect(types.get("hearth_http_requests_total")).toBe("counter");
    expect(types.get("hearth_time_to_first_token_seconds")).toBe("histogram");
    expect(types.get("hearth_generation_tokens_per_second")).toBe("histogram");
    expect(types.get("hearth_queue_depth")).toBe("gauge");
    expect(types.get("hearth_requests_running")).toBe("gauge");
    expect(find(samples, "hearth_models_loaded")).toBe(0);
  });

  it("counts requests per endpoint and status", () => {
    const metrics = new Metrics();
    metrics.recordHttpRequest("/v1/chat/completions", 200);
    metrics.recordHttpRequest("/v1/chat/completions", 200);
    metrics.recordHttpRequest("/v1/chat/completions", 400);
    const { samples } = parseExposition(metrics.render());
    expect(find(samples, "hearth_http_requests_total", { endpoint: "/v1/chat/completions", status: "200" })).toBe(2);
    expect(find(samples, "hearth_http_requests_total", { endpoint: "/v1/chat/completions", status: "400" })).toBe(1);
  });

  it("records token counters and histograms from a generation", () => {
    const metrics = new Metrics();
    const result = { usage: { promptTokens: 10, completionTokens: 11, reasoningTokens: 0 }, cachedPromptTokens: 4, timeToFirstTokenMs: 200 };
    metrics.recordGeneration({ model: "tiny", result, wallMs: 1200 });
    metrics.recordGeneration({ model: "tiny", result, wallMs: 1200 });
    const { samples } = parseExposition(metrics.render());
    expect(find(samples, "hearth_prompt_tokens_total", { model: "tiny" })).toBe(20);
    expect(find(samples, "hearth_completion_tokens_total", { model: "tiny" })).toBe(22);
    expect(find(samples, "hearth_cached_prompt_tokens_total", { model: "tiny" })).toBe(8);
    expect(find(samples, "hearth_time_to_first_token_seconds_count", { model: "tiny" })).toBe(2);
    expect(find(samples, "hearth_time_to_first_token_seconds_sum", { model: "tiny" })).toBeCloseTo(0.4);
    expect(find(samples, "hearth_time_to_first_token_seconds_bucket", { model: "tiny", le: "0.1" })).toBe(0);
    expect(find(samples, "hearth_time_to_first_token_seconds_bucket", { model: "tiny", le: "0.25" })).toBe(2);
    expect(find(samples, "hearth_time_to_first_token_seconds_bucket", { model: "tiny", le: "+Inf" })).toBe(2);
    // 10 tokens after the first over 1.0 s after it.
    expect(find(samples, "hearth_generation_tokens_per_second_sum", { model: "tiny" })).toBeCloseTo(20);
    expect(find(samples, "hearth_generation_tokens_per_second_bucket", { model: "tiny", le: "5" })).toBe(0);
    expect(find(samples, "hearth_generation_tokens_per_second_bucket", { model: "tiny", le: "10" })).toBe(2);
  });

  it("keeps histogram buckets cumulative and ending in +Inf equal to the count", () => {
    const metrics = new Metrics();
    for (const ttft of [10, 80, 300, 4000, 500_000]) {
      metrics.recordGeneration({ model: "m", result: { usage: { promptTokens: 1, completionTokens: 1, reasoningTokens: 0 }, cachedPromptTokens: 0, timeToFirstTokenMs: ttft }, wallMs: ttft });
    }
    const { samples } = parseExposition(metrics.render());
    const buckets = samples.filter((sample) => sample.name === "hearth_time_to_first_token_seconds_bucket");
    const values = buckets.map((sample) => sample.value);
    expect(values).toEqual([...values].sort((a, b) => a - b));
    expect(buckets[buckets.length - 1]).toMatchObject({ labels: { model: "m", le: "+Inf" }, value: 5 });
    expect(find(samples, "hearth_time_to_first_token_seconds_count", { model: "m" })).toBe(5);
  });

  it("counts embedding prompt tokens", () => {
    const metrics = new Metrics();
    metrics.recordEmbedding("tiny", 7);
    expect(find(parseExposition(metrics.render()).samples, "hearth_prompt_tokens_total", { model: "tiny" })).toBe(7);
  });

  it("reads gauges from the engine at scrape time", () => {
    let current: EngineStats = stats;
    const metrics = new Metrics({ stats: () => current });
    let { samples } = parseExposition(metrics.render());
    expect(find(samples, "hearth_queue_depth", { model: "tiny" })).toBe(5);
    expect(find(samples, "hearth_queue_depth", { model: "big" })).toBe(1);
    expect(find(samples, "hearth_requests_running", { model: "tiny" })).toBe(2);
    expect(find(samples, "hearth_models_loaded")).toBe(2);
    current = { loaded: [] };
    ({ samples } = parseExposition(metrics.render()));
    expect(find(samples, "hearth_models_loaded")).toBe(0);
    expect(find(samples, "hearth_queue_depth", { model: "tiny" })).toBeUndefined();
  });

  it("survives a stats provider that throws, and reads it again at the next scrape", () => {
    let engineGone = true;
    const metrics = new Metrics({
      stats: () => {
        if (engineGone) throw new Error("engine gone");
        return stats;
      },
    });
    metrics.recordHttpRequest("/health", 200);
    const { samples } = parseExposition(metrics.render());
    expect(find(samples, "hearth_http_requests_total", { endpoint: "/health" })).toBe(1);
    engineGone = false;
    expect(find(parseExposition(metrics.render()).samples, "hearth_models_loaded")).toBe(2);
  });

  it("escapes hostile model ids so the output stays parseable", () => {
    const hostile = 'evil"} 1\nhearth_fake 99 \\';
    const metrics = new Metrics({ stats: () => ({ loaded: [{ modelId: hostile, placement: "whole", pid: 1, state: "ready", running: 1, queued: 0, lastUsedAt: 0 }] }) });
    metrics.recordEmbedding(hostile, 3);
    const { samples } = parseExposition(metrics.render());
    expect(find(samples, "hearth_prompt_tokens_total", { model: hostile })).toBe(3);
    expect(samples.some((sample) => sample.name === "hearth_fake")).toBe(false);
  });

  it("ignores negative and non-finite amounts", () => {
    const metrics = new Metrics();
    metrics.recordEmbedding("m", -5);
    metrics.recordEmbedding("m", NaN);
    expect(find(parseExposition(metrics.render()).samples, "hearth_prompt_tokens_total", { model: "m" })).toBeUndefined();
  });
});

describe("decode speed", () => {
  it("counts tokens after the first over the time after it", () => {
    expect(decodeTokensPerSecond(11, 1200, 200)).toBeCloseTo(10);
  });

  it("falls back to the whole wall time without a first-token time", () => {
    expect(decodeTokensPerSecond(10, 2000, undefined)).toBeCloseTo(5);
  });

  it("is undefined when there is nothing to measure", () => {
    expect(decodeTokensPerSecond(1, 500, 100)).toBeUndefined();
    expect(decodeTokensPerSecond(5, 100, 100)).toBeUndefined();
    expect(decodeTokensPerSecond(0, 100, undefined)).toBeUndefined();
  });
});
