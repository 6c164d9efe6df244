// A parser for the Prometheus text exposition format (0.0.4), strict enough to catch a malformed
// scrape: HELP and TYPE lines, label escapes, one TYPE per family declared before its samples.
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Scrape {
  /** Family name -> type, from the TYPE lines. */
  types: Map<string, string>;
  help: Map<string, string>;
  samples: Sample[];
  /** The one sample of `name` whose labels include `labels`; throws when there are several. */
  value(name: string, labels?: Record<string, string>): number | undefined;
  /** A histogram's buckets of `name` whose labels include `labels`, as [upper bound, count], by bound. */
  buckets(name: string, labels?: Record<string, string>): Array<[number, number]>;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*/;

/** Parses a whole scrape; throws naming the line on anything outside the format. */
export function parsePrometheus(text: string): Scrape {
  const types = new Map<string, string>();
  const help = new Map<string, string>();
  const samples: Sample[] = [];
  if (!text.endsWith("\n")) throw new Error("the exposition does not end with a newline");
  text
    .slice(0, -1)
    .split("\n")
    .forEach((line, i) => {
      const where = `line ${i + 1} ${JSON.stringify(line)}`;
      if (line.trim() === "") return;
      if (line.startsWith("#")) {
        const m = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
        if (!m) return;
        if (m[1] === "TYPE") {
          if (!/^(counter|gauge|histogram|summary|untyped)$/.test(m[3])) throw new Error(`${where}: unknown type`);
          if (types.has(m[2])) throw new Error(`${where}: a second TYPE for ${m[2]}`);
          if (samples.some((s) => s.name === m[2])) throw new Error(`${where}: TYPE after samples of ${m[2]}`);
          types.set(m[2], m[3]);
        } else help.set(m[2], m[3]);
        return;
      }
      samples.push(parseSample(line, where));
    });
  return {
    types,
    help,
    samples,
    value(name, labels = {}) {
      const found = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
      if (found.length > 1) throw new Error(`${found.length} samples of ${name} match ${JSON.stringify(labels)}`);
      return found[0]?.value;
    },
    buckets(name, labels = {}) {
      return samples
        .filter((s) => s.name === `${name}_bucket` && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
        .map((s) => [s.labels.le === "+Inf" ? Infinity : Number(s.labels.le), s.value] as [number, number])
        .sort((a, b) => a[0] - b[0]);
    },
  };
}

function parseSample(line: string, where: string): Sample {
  const name = NAME.exec(line)?.[0];
  if (!name) throw new Error(`${where}: no metric name`);
  let rest = line.slice(name.length);
  const labels: Record<string, string> = {};
  if (rest.startsWith("{")) {
    rest = rest.slice(1);
    while (!rest.startsWith("}")) {
      const label = LABEL_NAME.exec(rest)?.[0];
      if (!label || rest[label.length] !== "=" || rest[label.length + 1] !== '"') throw new Error(`${where}: bad label`);
      rest = rest.slice(label.length + 2);
      let value = "";
      for (;;) {
        const c = rest[0];
        if (c === undefined) throw new Error(`${where}: unterminated label value`);
        rest = rest.slice(1);
        if (c === '"') break;
        if (c === "\\") {
          const e = rest[0];
          rest = rest.slice(1);
          if (e === "n") value += "\n";
          else if (e === "\\" || e === '"') value += e;
          else throw new Error(`${where}: bad escape \\${e}`);
        } else value += c;
      }
      if (label in labels) throw new Error(`${where}: label ${label} twice`);
      labels[label] = value;
      if (rest.startsWith(",")) rest = rest.slice(1);
      else if (!rest.startsWith("}")) throw new Error(`${where}: expected , or }`);
    }
    rest = rest.slice(1);
  }
  const m = /^ (\S+)(?: (-?\d+))?$/.exec(rest);
  if (!m) throw new Error(`${where}: bad value`);
  // Prometheus reads these as Go's ParseFloat does, case-insensitively; prom-client writes "Nan".
  const special = m[1].toLowerCase();
  const value =
    special === "+inf" || special === "inf" ? Infinity : special === "-inf" ? -Infinity : special === "nan" ? NaN : Number(m[1]);
  if (Number.isNaN(value) && special !== "nan") throw new Error(`${where}: bad value ${m[1]}`);
  return { name, labels, value };
}
