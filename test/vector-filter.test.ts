/** The --FILTER language: precedence, types, missing fields, membership, bad syntax. */
import { describe, expect, it } from 'vitest';
import { compileFilter, parseAttrs, type Attrs } from '../src/vector/filter.js';

const items: Record<string, Attrs> = {
  a: { tenant: 'acme', year: 2021, draft: false, tags: ['red', 'blue'] },
  b: { tenant: 'acme', year: 2023, draft: true, tags: ['green'] },
  c: { tenant: 'globex', year: 2023, price: 9.5 },
  d: {},
};
const match = (expr: string) => Object.keys(items).filter((k) => compileFilter(expr)(items[k])).join('');

describe('filter language', () => {
  it.each([
    ['tenant == "acme"', 'ab'],
    ["tenant == 'acme'", 'ab'],
    ['.tenant == "acme"', 'ab'],
    ['tenant != "acme"', 'c'], // d has no tenant: no match, also under !=
    ['year > 2021', 'bc'],
    ['year >= 2021 and year < 2023', 'a'],
    ['2023 == year', 'bc'],
    ['draft', 'b'],
    ['not draft', 'acd'],
    ['draft == false', 'a'],
    ['!draft && tenant == "acme"', 'a'],
    ['tenant == "globex" || draft', 'bc'],
    ['tenant == "globex" or tenant == "acme" and year == 2021', 'ac'], // and binds tighter
    ['(tenant == "globex" or tenant == "acme") and year == 2023', 'bc'],
    ['tenant in ["globex", "initech"]', 'c'],
    ['"red" in tags', 'a'],
    ['tags == "green"', 'b'],
    ['year in [2021, 2022]', 'a'],
    ['price < 10', 'c'],
    ['price > "5"', ''], // number vs string: no match
    ['tenant > "b"', 'c'],
    ['missing == 1', ''],
    ['not (missing == 1)', 'abcd'],
    ['TENANT == "acme"', ''], // field names are case-sensitive
    ['tenant == "acme" AND year == 2023', 'b'], // keywords are not
    ['year == -1 or year > 1e3', 'abc'],
    ['true', 'abcd'],
  ])('%s → %s', (expr, expected) => {
    expect(match(expr)).toBe(expected);
  });

  it.each([
    ['', 'empty expression'],
    ['tenant = "acme"', "use '=='"],
    ['tenant ==', 'unexpected end'],
    ['(tenant == "a"', "missing ')'"],
    ['tenant == "a")', "unexpected ')'"],
    ['tenant == "acme', 'unterminated string'],
    ['year in [1, 2', "missing ']'"],
    ['year in [1 2]', "expected ','"],
    ['tenant == "a" and', 'unexpected end'],
    ['42', 'alone is not a condition'],
    ['tenant @ 1', "unexpected '@'"],
    ['('.repeat(100) + 'a' + ')'.repeat(100), 'nested too deeply'],
  ])('bad syntax %s → %s', (expr, msg) => {
    expect(() => compileFilter(expr)).toThrow(msg);
    expect(() => compileFilter(expr)).toThrow(/^invalid filter: /);
  });

  it('attributes are validated', () => {
    expect(parseAttrs({ a: 'x', b: 1, c: true, d: ['x', 'y'] })).toEqual({ a: 'x', b: 1, c: true, d: ['x', 'y'] });
    expect(() => parseAttrs([1])).toThrow('flat JSON object');
    expect(() => parseAttrs({ a: { b: 1 } })).toThrow("attribute 'a'");
    expect(() => parseAttrs({ a: [1] })).toThrow("attribute 'a'");
    expect(() => parseAttrs({ a: null })).toThrow("attribute 'a'");
    expect(() => parseAttrs({ 'bad name': 1 })).toThrow('invalid attribute name');
  });
});
