import { describe, expect, it } from 'vitest';
import { CommandError } from '../src/errors.js';
import {
  formatFloat32,
  formatVector,
  parseCsvVector,
  parseFp32Vector,
  parseId,
  parseNonNegInt,
  parsePositiveInt,
  vectorToFp32,
} from '../src/vector/parse.js';
import { DEFAULT_PARAMS, parseStoreParams, paramsToJson } from '../src/vector/params.js';

function errorOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(CommandError);
    return (e as CommandError).message;
  }
  return '<no error>';
}

describe('parseId', () => {
  const ok: [string, number | bigint][] = [
    ['0', 0],
    ['1', 1],
    ['42', 42],
    ['4294967295', 4294967295],
    ['2147483648', 2147483648],
    // unsigned 64-bit, as the original's: a number while safe, a bigint above
    ['4294967296', 4294967296],
    ['9007199254740991', 9007199254740991],
    ['9007199254740992', 9007199254740992n],
    ['18446744073709551615', 18446744073709551615n],
  ];
  it.each(ok)('accepts %j', (s, n) => {
    expect(parseId(s)).toBe(n);
    expect(parseId(Buffer.from(s))).toBe(n);
  });

  const bad = [
    '18446744073709551616', '99999999999999999999', '100000000000000000000', '-1', '-0', '+1', '1.5', '1.0', '12abc', 'abc', '', ' 1', '1 ', '1e3',
    '0x10', '01', '00', '\t1', '1\n', 'Infinity', 'NaN', '١', '1_000',
  ];
  it.each(bad)('rejects %j with "invalid id"', (s) => {
    expect(errorOf(() => parseId(s))).toBe('invalid id');
    expect(errorOf(() => parseId(Buffer.from(s)))).toBe('invalid id');
  });
});

describe('parseCsvVector', () => {
  const ok: [string, number[]][] = [
    ['1', [1]],
    ['1,2,3', [1, 2, 3]],
    ['0.1,-0.2,+0.3', [Math.fround(0.1), Math.fround(-0.2), Math.fround(0.3)]],
    [' 1 , 2 ,3 ', [1, 2, 3]],
    ['\t1,\t2', [1, 2]],
    ['1e3,2.5E-2,-1e+2', [1000, Math.fround(0.025), -100]],
    ['.5,5.,0', [0.5, 5, 0]],
    ['1e-50', [0]], // underflows to 0 in float32: still finite
    ['3.4028234e38', [Math.fround(3.4028234e38)]],
  ];
  it.each(ok)('parses %j', (s, v) => {
    expect(Array.from(parseCsvVector(s))).toEqual(v);
    expect(Array.from(parseCsvVector(Buffer.from(s)))).toEqual(v);
  });

  const bad = [
    '1,,2', '1,2,', ',1', '12abc', '1,2x', 'abc', 'NaN', '1,nan', 'inf', 'Infinity', '-Infinity', '1e39',
    '-1e39', '0x1p3', '1 2', '1;2', '--1', '1e', 'e5', '.', '1.2.3', '+', '١',
  ];
  it.each(bad)('rejects %j with "invalid embedding"', (s) => {
    expect(errorOf(() => parseCsvVector(s))).toBe('invalid embedding');
  });

  it.each(['', ' ', '\t '])('rejects empty %j with "invalid embedding: size is 0"', (s) => {
    expect(errorOf(() => parseCsvVector(s))).toBe('invalid embedding: size is 0');
  });
});

describe('parseFp32Vector', () => {
  it('reads little-endian float32', () => {
    const b = Buffer.alloc(12);
    b.writeFloatLE(1.5, 0);
    b.writeFloatLE(-2, 4);
    b.writeFloatLE(0.1, 8);
    expect(Array.from(parseFp32Vector(b))).toEqual([1.5, -2, Math.fround(0.1)]);
  });
  it('copes with unaligned views and round-trips vectorToFp32', () => {
    const v = new Float32Array([0.25, -3, 7e-8, 1e30]);
    const raw = Buffer.concat([Buffer.from([9]), vectorToFp32(v)]).subarray(1);
    expect(Array.from(parseFp32Vector(raw))).toEqual(Array.from(v));
  });
  const cases: [string, Buffer, string][] = [
    ['empty', Buffer.alloc(0), 'invalid embedding: size is 0'],
    ['3 bytes', Buffer.alloc(3), 'invalid embedding'],
    ['5 bytes', Buffer.alloc(5), 'invalid embedding'],
    ['NaN', Buffer.from(new Float32Array([1, NaN]).buffer), 'invalid embedding'],
    ['Infinity', Buffer.from(new Float32Array([Infinity]).buffer), 'invalid embedding'],
    ['-Infinity', Buffer.from(new Float32Array([2, -Infinity]).buffer), 'invalid embedding'],
  ];
  it.each(cases)('rejects %s', (_name, b, msg) => {
    expect(errorOf(() => parseFp32Vector(b))).toBe(msg);
  });
});

describe('formatVector', () => {
  const cases: [number, string][] = [
    [0, '0'],
    [-0, '0'],
    [1, '1'],
    [-2.5, '-2.5'],
    [0.1, '0.1'],
    [1 / 3, '0.33333334'],
    [123456789, '123456790'],
    [1e-7, '1e-7'],
    [3.4028234663852886e38, '3.4028235e+38'],
    [1.401298464324817e-45, '1e-45'],
  ];
  it.each(cases)('formats %d as %j', (x, s) => {
    expect(formatFloat32(x)).toBe(s);
  });

  it('is the shortest text that reads back to the same float32 (randomised)', () => {
    const f = new Float32Array(1);
    const u = new Uint32Array(f.buffer);
    for (let i = 0; i < 20000; i++) {
      u[0] = (Math.random() * 0x100000000) >>> 0;
      const v = f[0]!;
      if (!Number.isFinite(v)) continue;
      const s = formatFloat32(v);
      expect(Math.fround(Number(s))).toBe(v === 0 ? 0 : v);
      // one significant digit fewer no longer round-trips
      const digits = s.replace(/^-/, '').replace(/e.*$/, '').replace('.', '').replace(/^0+/, '').replace(/0+$/, '').length;
      if (digits > 1) expect(Math.fround(Number(v.toPrecision(digits - 1)))).not.toBe(v);
    }
  });

  it('joins with commas and feeds back into parseCsvVector unchanged', () => {
    const v = new Float32Array([0.1, -2, 1e-7, 3e25, 0.5]);
    const s = formatVector(v);
    expect(s).toBe('0.1,-2,1e-7,3e+25,0.5');
    expect(Array.from(parseCsvVector(s))).toEqual(Array.from(v));
  });
});

describe('parsePositiveInt / parseNonNegInt', () => {
  const msg = 'value is not an integer or out of range';
  it.each([['1', 1], ['10', 10], ['9007199254740991', 9007199254740991]] as const)('positive %j', (s, n) => {
    expect(parsePositiveInt(s)).toBe(n);
  });
  it.each(['0', '-1', '1.5', '12abc', '', ' 1', '+1', '01', '1e3', '9007199254740992', 'abc'])(
    'positive rejects %j',
    (s) => expect(errorOf(() => parsePositiveInt(s))).toBe(msg),
  );
  it.each([['0', 0], ['7', 7]] as const)('non-negative %j', (s, n) => expect(parseNonNegInt(s)).toBe(n));
  it.each(['-1', '-0', '1.0', 'x', ''])('non-negative rejects %j', (s) => {
    expect(errorOf(() => parseNonNegInt(s))).toBe(msg);
  });
  it('honours max and a custom message', () => {
    expect(parsePositiveInt('100', 100)).toBe(100);
    expect(errorOf(() => parsePositiveInt('101', 100))).toBe(msg);
    expect(errorOf(() => parsePositiveInt('0', 100, 'invalid k'))).toBe('invalid k');
  });
});

describe('parseStoreParams', () => {
  it('defaults', () => {
    expect(parseStoreParams(undefined)).toEqual({ ...DEFAULT_PARAMS });
    expect(parseStoreParams(null)).toEqual({ ...DEFAULT_PARAMS });
    expect(parseStoreParams({})).toEqual({ ...DEFAULT_PARAMS });
    expect(DEFAULT_PARAMS).toMatchObject({ space: 'l2', m: 16, efConstruction: 200, maxElements: 100000 });
  });
  it('reads every key', () => {
    const p = parseStoreParams({ space: 'COSINE', dim: 8, m: 8, ef_construction: 50, max_elements: 10, ef: 20 });
    expect(p).toEqual({ space: 'cosine', dim: 8, m: 8, efConstruction: 50, maxElements: 10, ef: 20 });
    expect(parseStoreParams(paramsToJson(p))).toEqual(p);
    expect(parseStoreParams({ dim: null }).dim).toBeUndefined();
  });
  const bad: [string, unknown, string][] = [
    ['array', [1], 'must be a JSON object'],
    ['string', 'x', 'must be a JSON object'],
    ['number', 3, 'must be a JSON object'],
    ['unknown key', { max_element: 5 }, "unknown key 'max_element'"],
    ['space type', { space: 1 }, 'space must be one of l2, cosine, ip'],
    ['space name', { space: 'hamming' }, 'space must be one of'],
    ['m string', { m: '16' }, 'm must be an integer in [2, 256]'],
    ['m float', { m: 16.5 }, 'm must be an integer'],
    ['m small', { m: 1 }, 'm must be an integer'],
    ['m big', { m: 100000 }, 'm must be an integer'],
    ['ef_construction 0', { ef_construction: 0 }, 'ef_construction must be an integer'],
    ['max_elements negative', { max_elements: -1 }, 'max_elements must be an integer'],
    ['max_elements huge', { max_elements: 2 ** 32 }, 'max_elements must be an integer'],
    ['max_elements bool', { max_elements: true }, 'max_elements must be an integer'],
    ['dim 0', { dim: 0 }, 'dim must be an integer'],
    ['dim object', { dim: {} }, 'dim must be an integer'],
    ['ef NaN-ish', { ef: 'NaN' }, 'ef must be an integer'],
    ['ef 0', { ef: 0 }, 'ef must be an integer'],
  ];
  it.each(bad)('rejects %s', (_n, json, msg) => {
    const m = errorOf(() => parseStoreParams(json));
    expect(m.startsWith('failed to parse vector store options: ')).toBe(true);
    expect(m).toContain(msg);
  });
});
