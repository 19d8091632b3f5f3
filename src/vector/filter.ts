/**
 * The filter language of `LLM.KNN ... --FILTER expr`, over an item's attributes (a flat JSON
 * object of strings, numbers, booleans and arrays of strings).
 *
 *   expr     := or
 *   or       := and (('or' | '||') and)*
 *   and      := unary (('and' | '&&') unary)*
 *   unary    := ('not' | '!') unary | primary
 *   primary  := '(' expr ')' | operand (op operand | 'in' operand)?
 *   operand  := field | number | "string" | 'string' | true | false | '[' literal, ... ']'
 *   op       := == | != | < | <= | > | >=
 *   field    := name or .name  (letters, digits, _ and -; a leading dot is optional)
 *
 * Semantics: `==`/`!=` compare values of the same type (an array attribute `==` a string means
 * "contains"); `<`… compare numbers with numbers and strings with strings; `x in [..]` is list
 * membership and `"v" in tags` tests an array attribute. A comparison that involves a missing
 * field, or values of different types, is false — also under `!=` — so items missing a field
 * simply do not match (`not` inverts a whole sub-expression, so `not (a == 1)` matches items
 * without `a`). A bare field is true when it is true, a non-zero number, or a non-empty string/array.
 * Keywords are case-insensitive. Parsed once per query into a closure.
 */
import { CommandError } from '../errors.js';

export type AttrValue = string | number | boolean | string[];
export type Attrs = Record<string, AttrValue>;
export type Predicate = (attrs: Attrs | undefined) => boolean;

/** A literal of a filter expression (list items, and the scalar side of a comparison). */
export type FilterLiteral = string | number | boolean;
export type FilterOp = '==' | '!=' | '<' | '<=' | '>' | '>=';

/**
 * The parsed expression, for evaluation by attribute indexes (attr-index.ts); same semantics as
 * the predicate built by the same parse. Comparisons are normalised to field-op-literal (`2020 <
 * year` is `year > 2020`); literal-only sub-expressions are folded to `const`, and and/or/not
 * with constant operands are simplified (`x and false` is `false`, also when x is opaque).
 *
 * - `truthy`: a bare field (true, a non-zero number, a non-empty string or array).
 * - `cmp`: `field op value`, with the predicate's typing (missing field or other type: false,
 *   also under `!=`; a string-array field `==` a string means contains).
 * - `in`: `field in [values]` (list membership with ===; an array attribute is never in a list).
 * - `contains`: `value in field` (field must be an array holding value).
 * - `opaque`: not indexable (field vs field, field in field, a list compared with == or !=).
 */
export type FilterNode =
  | { kind: 'const'; value: boolean }
  | { kind: 'and'; children: FilterNode[] }
  | { kind: 'or'; children: FilterNode[] }
  | { kind: 'not'; child: FilterNode }
  | { kind: 'truthy'; field: string }
  | { kind: 'cmp'; field: string; op: FilterOp; value: FilterLiteral }
  | { kind: 'in'; field: string; values: FilterLiteral[] }
  | { kind: 'contains'; field: string; value: FilterLiteral }
  | { kind: 'opaque'; reason: string };

/** A filter parsed once: the per-item predicate and the expression tree for attribute indexes. */
export interface FilterPlan {
  predicate: Predicate;
  node: FilterNode;
}

type Tok =
  | { t: 'num'; v: number }
  | { t: 'str'; v: string }
  | { t: 'bool'; v: boolean }
  | { t: 'field'; v: string }
  | { t: 'op'; v: string }
  | { t: 'kw'; v: 'and' | 'or' | 'not' | 'in' }
  | { t: 'punct'; v: '(' | ')' | '[' | ']' | ',' };

const MAX_FILTER_LEN = 4096;

function fail(msg: string): never {
  throw new CommandError(`invalid filter: ${msg}`);
}

function tokenize(src: string): Tok[] {
  if (src.length > MAX_FILTER_LEN) fail(`longer than ${MAX_FILTER_LEN} characters`);
  const out: Tok[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i];
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    if ('()[],'.includes(c)) {
      out.push({ t: 'punct', v: c as '(' });
      i++;
      continue;
    }
    const two = src.slice(i, i + 2);
    if (['==', '!=', '<=', '>=', '&&', '||'].includes(two)) {
      if (two === '&&') out.push({ t: 'kw', v: 'and' });
      else if (two === '||') out.push({ t: 'kw', v: 'or' });
      else out.push({ t: 'op', v: two });
      i += 2;
      continue;
    }
    if (c === '<' || c === '>') {
      out.push({ t: 'op', v: c });
      i++;
      continue;
    }
    if (c === '!') {
      out.push({ t: 'kw', v: 'not' });
      i++;
      continue;
    }
    if (c === '=') fail(`'=' at ${i}: use '==' to compare`);
    if (c === '"' || c === "'") {
      let j = i + 1;
      let s = '';
      while (j < src.length && src[j] !== c) {
        if (src[j] === '\\' && j + 1 < src.length) {
          const e = src[j + 1];
          s += e === 'n' ? '\n' : e === 't' ? '\t' : e;
          j += 2;
        } else s += src[j++];
      }
      if (j >= src.length) fail(`unterminated string starting at ${i}`);
      out.push({ t: 'str', v: s });
      i = j + 1;
      continue;
    }
    const num = /^-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?/.exec(src.slice(i));
    if (num && (c === '-' || /\d/.test(c) || (c === '.' && /\d/.test(src[i + 1] ?? '')))) {
      out.push({ t: 'num', v: Number(num[0]) });
      i += num[0].length;
      continue;
    }
    const id = /^\.?[A-Za-z_][A-Za-z0-9_-]*/.exec(src.slice(i));
    if (id) {
      const word = id[0];
      const low = word.toLowerCase();
      if (low === 'and' || low === 'or' || low === 'not' || low === 'in') out.push({ t: 'kw', v: low });
      else if (low === 'true' || low === 'false') out.push({ t: 'bool', v: low === 'true' });
      else out.push({ t: 'field', v: word.replace(/^\./, '') });
      i += word.length;
      continue;
    }
    fail(`unexpected '${c}' at ${i}`);
  }
  return out;
}

type Operand = { kind: 'field'; name: string } | { kind: 'lit'; value: AttrValue | AttrValue[] };
type Parsed = { pred: Predicate; node: FilterNode };

class Parser {
  private p = 0;
  private depth = 0;
  constructor(private readonly toks: Tok[]) {}

  parse(): FilterPlan {
    if (this.toks.length === 0) fail('empty expression');
    const e = this.or();
    if (this.p < this.toks.length) fail(`unexpected ${describe(this.toks[this.p])}`);
    return { predicate: e.pred, node: e.node };
  }

  private peek(): Tok | undefined {
    return this.toks[this.p];
  }

  private isKw(v: string): boolean {
    const t = this.peek();
    return t?.t === 'kw' && t.v === v;
  }

  private or(): Parsed {
    const first = this.and();
    let pred = first.pred;
    const nodes = [first.node];
    while (this.isKw('or')) {
      this.p++;
      const l = pred;
      const r = this.and();
      const rp = r.pred;
      nodes.push(r.node);
      pred = (a) => l(a) || rp(a);
    }
    return { pred, node: nodes.length === 1 ? first.node : junction('or', nodes) };
  }

  private and(): Parsed {
    const first = this.unary();
    let pred = first.pred;
    const nodes = [first.node];
    while (this.isKw('and')) {
      this.p++;
      const l = pred;
      const r = this.unary();
      const rp = r.pred;
      nodes.push(r.node);
      pred = (a) => l(a) && rp(a);
    }
    return { pred, node: nodes.length === 1 ? first.node : junction('and', nodes) };
  }

  private unary(): Parsed {
    if (this.isKw('not')) {
      this.p++;
      const inner = this.unary();
      const ip = inner.pred;
      return { pred: (a) => !ip(a), node: negate(inner.node) };
    }
    return this.primary();
  }

  private primary(): Parsed {
    const t = this.peek();
    if (!t) fail('unexpected end of expression');
    if (t.t === 'punct' && t.v === '(') {
      if (++this.depth > 64) fail('nested too deeply');
      this.p++;
      const e = this.or();
      const close = this.peek();
      if (!close || close.t !== 'punct' || close.v !== ')') fail("missing ')'");
      this.p++;
      this.depth--;
      return e;
    }
    const left = this.operand();
    const next = this.peek();
    if (next?.t === 'op') {
      this.p++;
      const right = this.operand();
      const pred = compare(left, next.v, right);
      return { pred, node: compareNode(left, next.v as FilterOp, right, pred) };
    }
    if (next?.t === 'kw' && next.v === 'in') {
      this.p++;
      const right = this.operand();
      const pred = membership(left, right);
      return { pred, node: membershipNode(left, right, pred) };
    }
    if (left.kind === 'field') {
      const name = left.name;
      return { pred: (a) => truthy(field(a, name)), node: { kind: 'truthy', field: name } };
    }
    if (typeof left.value === 'boolean') {
      const value = left.value;
      return { pred: () => value, node: { kind: 'const', value } };
    }
    fail(`a ${typeof left.value} alone is not a condition`);
  }

  private operand(): Operand {
    const t = this.peek();
    if (!t) fail('unexpected end of expression');
    this.p++;
    switch (t.t) {
      case 'field':
        return { kind: 'field', name: t.v };
      case 'num':
      case 'str':
      case 'bool':
        return { kind: 'lit', value: t.v };
      case 'punct':
        if (t.v === '[') return { kind: 'lit', value: this.list() };
        break;
    }
    fail(`unexpected ${describe(t)}`);
  }

  private list(): AttrValue[] {
    const items: AttrValue[] = [];
    for (;;) {
      const t = this.peek();
      if (!t) fail("missing ']'");
      if (t.t === 'punct' && t.v === ']') {
        this.p++;
        return items;
      }
      if (items.length > 0) {
        if (t.t !== 'punct' || t.v !== ',') fail(`expected ',' or ']' but got ${describe(t)}`);
        this.p++;
      }
      const v = this.peek();
      if (!v || (v.t !== 'num' && v.t !== 'str' && v.t !== 'bool')) fail('list items must be numbers, strings or booleans');
      items.push(v.v);
      this.p++;
    }
  }
}

function describe(t: Tok): string {
  return t.t === 'str' ? `string "${t.v}"` : `'${String(t.v)}'`;
}

function truthy(v: unknown): boolean {
  if (v === undefined || v === null) return false;
  if (typeof v === 'boolean') return v;
  if (typeof v === 'number') return v !== 0;
  if (typeof v === 'string' || Array.isArray(v)) return v.length > 0;
  return false;
}

const hasOwn = (o: object, k: string): boolean => Object.prototype.hasOwnProperty.call(o, k);

/** An attribute's value; only the item's own attributes count (`constructor`, `toString`... are not attributes). */
const field = (a: Attrs | undefined, name: string): unknown => (a !== undefined && hasOwn(a, name) ? a[name] : undefined);

const resolve = (o: Operand, a: Attrs | undefined): unknown => (o.kind === 'field' ? field(a, o.name) : o.value);

function compare(l: Operand, op: string, r: Operand): Predicate {
  return (a) => {
    const x = resolve(l, a);
    const y = resolve(r, a);
    if (x === undefined || y === undefined) return false;
    if (op === '==' || op === '!=') {
      let eq: boolean | null = null;
      if (Array.isArray(x) && typeof y === 'string') eq = x.includes(y);
      else if (Array.isArray(y) && typeof x === 'string') eq = y.includes(x);
      else if (typeof x === typeof y && !Array.isArray(x)) eq = x === y;
      if (eq === null) return false;
      return op === '==' ? eq : !eq;
    }
    if (typeof x !== typeof y || (typeof x !== 'number' && typeof x !== 'string')) return false;
    const xs = x as number | string;
    const ys = y as number | string;
    switch (op) {
      case '<':
        return xs < ys;
      case '<=':
        return xs <= ys;
      case '>':
        return xs > ys;
      default:
        return xs >= ys;
    }
  };
}

function membership(l: Operand, r: Operand): Predicate {
  return (a) => {
    const x = resolve(l, a);
    const list = resolve(r, a);
    if (x === undefined || !Array.isArray(list)) return false;
    return (list as unknown[]).includes(x);
  };
}

const FLIP: Record<FilterOp, FilterOp> = { '==': '==', '!=': '!=', '<': '>', '<=': '>=', '>': '<', '>=': '<=' };

/** The node of `l op r` (pred is its predicate, used to fold literal-only comparisons). */
function compareNode(l: Operand, op: FilterOp, r: Operand, pred: Predicate): FilterNode {
  if (l.kind === 'lit' && r.kind === 'lit') return { kind: 'const', value: pred(undefined) };
  if (l.kind === 'field' && r.kind === 'field') return { kind: 'opaque', reason: 'field compared with field' };
  const [name, value, o] = l.kind === 'field' ? [l.name, (r as { value: AttrValue | AttrValue[] }).value, op] : [(r as { name: string }).name, l.value, FLIP[op]];
  if (Array.isArray(value)) {
    // `<`… with a list is never true (neither side is then a number or a string).
    if (o !== '==' && o !== '!=') return { kind: 'const', value: false };
    return { kind: 'opaque', reason: `list compared with ${o}` };
  }
  return { kind: 'cmp', field: name, op: o, value };
}

/** The node of `l in r`. */
function membershipNode(l: Operand, r: Operand, pred: Predicate): FilterNode {
  if (l.kind === 'lit' && r.kind === 'lit') return { kind: 'const', value: pred(undefined) };
  if (l.kind === 'field' && r.kind === 'field') return { kind: 'opaque', reason: 'field in field' };
  if (l.kind === 'field') {
    const list = (r as { value: AttrValue | AttrValue[] }).value;
    // `field in "x"`: the right side is not a list, never true.
    if (!Array.isArray(list)) return { kind: 'const', value: false };
    return { kind: 'in', field: l.name, values: [...(list as FilterLiteral[])] };
  }
  // `[..] in field`: a list literal is never an element of an attribute array.
  if (Array.isArray(l.value)) return { kind: 'const', value: false };
  return { kind: 'contains', field: (r as { name: string }).name, value: l.value };
}

/** and/or of nodes: nested same-kind nodes flattened, constants folded. */
function junction(kind: 'and' | 'or', nodes: FilterNode[]): FilterNode {
  const absorbing = kind === 'or'; // `x or true` is true, `x and false` is false
  const children: FilterNode[] = [];
  for (const n of nodes) {
    if (n.kind === 'const') {
      if (n.value === absorbing) return n;
      continue; // the neutral element
    }
    if (n.kind === kind) children.push(...n.children);
    else children.push(n);
  }
  if (children.length === 0) return { kind: 'const', value: !absorbing };
  return children.length === 1 ? children[0]! : { kind, children };
}

function negate(n: FilterNode): FilterNode {
  if (n.kind === 'const') return { kind: 'const', value: !n.value };
  if (n.kind === 'not') return n.child;
  return { kind: 'not', child: n };
}

/**
 * Parses a filter expression once: the predicate (called per candidate item) and the expression
 * tree (answered by attribute indexes when it holds no `opaque` node).
 */
export function compileFilterPlan(src: string): FilterPlan {
  return new Parser(tokenize(src)).parse();
}

/** Parses a filter expression once; the returned predicate is called per candidate item. */
export function compileFilter(src: string): Predicate {
  return compileFilterPlan(src).predicate;
}

/** Validates `--ATTRS`: a flat JSON object of strings, numbers, booleans and arrays of strings. */
export function parseAttrs(v: unknown): Attrs {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new CommandError('--ATTRS must be a flat JSON object');
  const out: Attrs = {};
  for (const [k, val] of Object.entries(v as Record<string, unknown>)) {
    if (!/^[A-Za-z_][A-Za-z0-9_-]*$/.test(k)) throw new CommandError(`invalid attribute name '${k}'`);
    let ok: AttrValue;
    if (typeof val === 'string' || typeof val === 'boolean' || (typeof val === 'number' && Number.isFinite(val))) ok = val;
    else if (Array.isArray(val) && val.every((e) => typeof e === 'string')) ok = val as string[];
    else throw new CommandError(`attribute '${k}' must be a string, a number, a boolean or an array of strings`);
    // Defined, not assigned: `out.__proto__ = v` would set the prototype and drop the attribute.
    Object.defineProperty(out, k, { value: ok, enumerable: true, writable: true, configurable: true });
  }
  return out;
}
