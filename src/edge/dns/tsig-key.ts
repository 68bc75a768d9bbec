/**
 * The `[dns] tsig_key_file` (issue 8): a BIND key file as
 * `tsig-keygen -a hmac-sha256 <name>` writes it,
 *
 *     key "name" {
 *         algorithm hmac-sha256;
 *         secret "base64";
 *     };
 *
 * nsupdate and dig read the file themselves (`-k`, so the secret never
 * appears in argv); MCP parses it only to refuse a bad file with a clear
 * message before the first update, instead of nsupdate's own words later.
 */
import { readFileSync } from "node:fs";
import { McpError, ValidationError, errorMessage } from "../../util/errors.js";

export interface TsigKey {
  name: string;
  /** As written, lower-cased: `hmac-sha256`. */
  algorithm: string;
  /** Base64, as in the file. */
  secret: string;
}

/** The TSIG algorithms BIND's tools accept in a key file. */
export const TSIG_ALGORITHMS = [
  "hmac-md5",
  "hmac-sha1",
  "hmac-sha224",
  "hmac-sha256",
  "hmac-sha384",
  "hmac-sha512",
] as const;

interface Token {
  kind: "word" | "string" | "{" | "}" | ";" | "end";
  text: string;
  line: number;
  column: number;
}

/** A syntax problem at a position; turned into a ValidationError naming the file. */
class KeySyntaxError extends Error {
  constructor(
    message: string,
    readonly line?: number,
    readonly column?: number,
  ) {
    super(message);
  }
}

/** named.conf tokens: quoted strings, bare words, braces, semicolons; `#`, `//` and C comments skipped. */
function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  let line = 1;
  let col = 1;
  const advance = (n: number) => {
    for (let k = 0; k < n; k++) {
      if (text[i] === "\n") {
        line++;
        col = 1;
      } else {
        col++;
      }
      i++;
    }
  };
  while (i < text.length) {
    const c = text[i]!;
    if (/\s/.test(c)) {
      advance(1);
    } else if (c === "#" || text.startsWith("//", i)) {
      while (i < text.length && text[i] !== "\n") advance(1);
    } else if (text.startsWith("/*", i)) {
      const [l, k] = [line, col];
      const end = text.indexOf("*/", i + 2);
      if (end < 0) throw new KeySyntaxError("unterminated comment", l, k);
      advance(end + 2 - i);
    } else if (c === "{" || c === "}" || c === ";") {
      tokens.push({ kind: c, text: c, line, column: col });
      advance(1);
    } else if (c === '"') {
      const [l, k] = [line, col];
      const end = text.indexOf('"', i + 1);
      const nl = text.indexOf("\n", i + 1);
      if (end < 0 || (nl >= 0 && nl < end)) throw new KeySyntaxError("unterminated string", l, k);
      tokens.push({ kind: "string", text: text.slice(i + 1, end), line: l, column: k });
      advance(end + 1 - i);
    } else {
      const m = /^[^\s{};"#]+/.exec(text.slice(i));
      const word = m![0];
      tokens.push({ kind: "word", text: word, line, column: col });
      advance(word.length);
    }
  }
  tokens.push({ kind: "end", text: "end of file", line, column: col });
  return tokens;
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function describe(t: Token): string {
  if (t.kind === "end") return "end of file";
  return t.kind === "string" ? `"${t.text}"` : `'${t.text}'`;
}

function parseTokens(tokens: Token[]): TsigKey {
  let pos = 0;
  const peek = () => tokens[pos]!;
  const next = () => tokens[Math.min(pos++, tokens.length - 1)]!;
  const fail = (t: Token, what: string): never => {
    throw new KeySyntaxError(`expected ${what}, found ${describe(t)}`, t.line, t.column);
  };
  const expect = (kind: Token["kind"], what: string) => {
    const t = next();
    return t.kind === kind ? t : fail(t, what);
  };
  /** A value: quoted or bare, then `;`. */
  const value = (what: string) => {
    const t = next();
    if (t.kind !== "word" && t.kind !== "string") fail(t, what);
    expect(";", "';'");
    return t;
  };

  const keyword = next();
  if (keyword.kind !== "word" || keyword.text !== "key") fail(keyword, "'key'");
  const nameTok = next();
  if (nameTok.kind !== "word" && nameTok.kind !== "string") fail(nameTok, "the key's name");
  const name = nameTok.text.replace(/\.$/, "");
  if (name === "")
    throw new KeySyntaxError("the key's name is empty", nameTok.line, nameTok.column);
  expect("{", "'{'");
  let algorithm: Token | undefined;
  let secret: Token | undefined;
  while (peek().kind !== "}") {
    const opt = next();
    if (opt.kind !== "word") fail(opt, "'algorithm', 'secret' or '}'");
    if (opt.text === "algorithm") {
      algorithm = value("an algorithm such as hmac-sha256");
      if (!(TSIG_ALGORITHMS as readonly string[]).includes(algorithm.text.toLowerCase())) {
        throw new KeySyntaxError(
          `unknown algorithm '${algorithm.text}' (expected one of ${TSIG_ALGORITHMS.join(", ")})`,
          algorithm.line,
          algorithm.column,
        );
      }
    } else if (opt.text === "secret") {
      secret = value("the secret in base64");
      if (secret.text === "" || !BASE64.test(secret.text)) {
        throw new KeySyntaxError("the secret is not base64", secret.line, secret.column);
      }
    } else {
      throw new KeySyntaxError(`unknown key option '${opt.text}'`, opt.line, opt.column);
    }
  }
  next(); // }
  expect(";", "';' after '}'");
  const rest = peek();
  if (rest.kind !== "end") fail(rest, "end of file (one key per file)");
  if (!algorithm) throw new KeySyntaxError(`key "${name}" has no algorithm`);
  if (!secret) throw new KeySyntaxError(`key "${name}" has no secret`);
  return { name, algorithm: algorithm.text.toLowerCase(), secret: secret.text };
}

/** Parses the text of key file `file` (named only in errors); throws a ValidationError. */
export function parseTsigKey(text: string, file: string): TsigKey {
  try {
    return parseTokens(tokenize(text));
  } catch (err) {
    if (!(err instanceof KeySyntaxError)) throw err;
    const problem =
      err.line === undefined
        ? { path: "", message: err.message }
        : { path: "", message: err.message, line: err.line, column: err.column ?? 1 };
    throw new ValidationError("invalid_config", file, [problem]);
  }
}

/**
 * Reads and parses the key file. Synchronous on purpose: the publisher
 * checks it in its constructor, so a bad `[dns] tsig_key_file` stops the
 * agent at start rather than at its first deploy.
 */
export function loadTsigKey(file: string): TsigKey {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new McpError(
      "invalid_config",
      `${file}: cannot read the TSIG key file ([dns] tsig_key_file): ${errorMessage(err)}`,
      { cause: err },
    );
  }
  return parseTsigKey(text, file);
}
