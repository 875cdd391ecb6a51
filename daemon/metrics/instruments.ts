/**
 * Labelled counters and histograms held in memory and rendered as Prometheus text.
 *
 * Series are keyed by their label values in a fixed label order, so one series per
 * distinct label set; callers keep label values bounded (endpoint names, known model ids).
 */

import { headerLines, sampleLine, type Labels } from "./prometheusText.js";

function seriesKey(labelNames: readonly string[], labels: Labels): string {
  return JSON.stringify(labelNames.map((name) => labels[name] ?? ""));
}

function pickLabels(labelNames: readonly string[], labels: Labels): Labels {
  return Object.fromEntries(labelNames.map((name) => [name, labels[name] ?? ""]));
}

export class Counter {
  private readonly series = new Map<string, { labels: Labels; value: number }>();

  constructor(
    readonly name: string,
    private readonly help: string,
    private readonly labelNames: readonly string[],
  ) {}

  inc(labels: Labels, amount = 1): void {
    if (!(amount >= 0) || !Number.isFinite(amount)) return;
    const key = seriesKey(this.labelNames, labels);
    const existing = this.series.get(key);
    if (existing) existing.value += amount;
    else this.series.set(key, { labels: pickLabels(this.labelNames, labels), value: amount });
  }

  get(labels: Labels): number {
    return this.series.get(seriesKey(this.labelNames, labels))?.value ?? 0;
  }

  render(): string[] {
    const lines = headerLines(this.name, "counter", this.help);
    for (const { labels, value } of this.series.values()) lines.push(sampleLine(this.name, labels, value));
    return lines;
  }
}

interface HistogramSeries {
  labels: Labels;
  /** Non-cumulative counts per bucket; rendering accumulates. */
  bucketCounts: number[];
  sum: number;
  count: number;
}

export class Histogram {
  private readonly series = new Map<string, HistogramSeries>();
  private readonly buckets: readonly number[];

  constructor(
    readonly name: string,
    private readonly help: string,
    private readonly labelNames: readonly string[],
    buckets: readonly number[],
  ) {
    this.buckets = [...buckets].sort((a, b) => a - b);
  }

  observe(labels: Labels, value: number): void {
    if (!Number.isFinite(value)) return;
    const key = seriesKey(this.labelNames, labels);
    let series = this.series.get(key);
    if (!series) {
      series = { labels: pickLabels(this.labelNames, labels), bucketCounts: this.buckets.map(() => 0), sum: 0, count: 0 };
      this.series.set(key, series);
    }
    const bucket = this.buckets.findIndex((bound) => value <= bound);
    if (bucket >= 0) series.bucketCounts[bucket] = (series.bucketCounts[bucket] ?? 0) + 1;
    series.sum += value;
    series.count += 1;
  }

  count(labels: Labels): number {
    return this.series.get(seriesKey(this.labelNames, labels))?.count ?? 0;
  }

  render(): string[] {
    const lines = headerLines(this.name, "histogram", this.help);
    for (const series of this.series.values()) {
      let cumulative = 0;
      for (const [index, bound] of this.buckets.entries()) {
        cumulative += series.bucketCounts[index] ?? 0;
        lines.push(sampleLine(`${this.name}_bucket`, { ...series.labels, le: String(bound) }, cumulative));
      }
      lines.push(sampleLine(`${this.name}_bucket`, { ...series.labels, le: "+Inf" }, series.count));
      lines.push(sampleLine(`${this.name}_sum`, series.labels, series.sum));
      lines.push(sampleLine(`${this.name}_count`, series.labels, series.count));
    }
    return lines;
  }
}

/** A gauge whose samples are computed at scrape time. */
export function renderGauge(name: string, help: string, samples: readonly { labels: Labels; value: number }[]): string[] {
  const lines = headerLines(name, "gauge", help);
  for (const { labels, value } of samples) lines.push(sampleLine(name, labels, value));
  return lines;
}
