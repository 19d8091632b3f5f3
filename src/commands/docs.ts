/**
 * COMMAND INFO and COMMAND DOCS entries of LLM.* commands, in Redis 7's reply shapes,
 * derived from the declarations.
 */
import { RespMap, SimpleString, type RespValue } from '../protocol/resp.js';
import { optionName, type ArgType, type CommandSpec } from './spec.js';

const docType = (t: ArgType): string => (t === 'json' || t === 'blob' ? 'string' : t);

/** `[name, arity, flags, first, last, step, acl, tips, key specs, subcommands]` */
export function commandInfo(spec: CommandSpec): RespValue {
  const flags = [...spec.flags, 'module'].map((f) => new SimpleString(f));
  const keySpec: RespValue = RespMap.of({
    flags: [new SimpleString(spec.keySpec.access), ...(spec.keySpec.op ? [new SimpleString(spec.keySpec.op)] : [])],
    begin_search: RespMap.of({ type: 'index', spec: RespMap.of({ index: 1 }) }),
    find_keys: RespMap.of({ type: 'range', spec: RespMap.of({ lastkey: 0, keystep: 1, limit: 0 }) }),
  });
  return [
    spec.name.toLowerCase(),
    spec.arity,
    flags,
    1,
    1,
    1,
    spec.aclCategories.map((c) => new SimpleString(c)),
    [],
    [keySpec],
    [],
  ];
}

/** The value half of a COMMAND DOCS map entry (a map; RESP2: a flat array of field, value). */
export function commandDocs(spec: CommandSpec): RespValue {
  const optional = [new SimpleString('optional')];
  const args: RespValue[] = [RespMap.of({ name: 'key', type: 'key', display_text: 'key', key_spec_index: 0 })];
  for (const o of spec.options) {
    const name = optionName(o.token);
    if (o.type === 'pure-token') {
      args.push(RespMap.of({ name, type: 'pure-token', token: o.token, flags: optional }));
    } else {
      args.push(RespMap.of({ name, type: docType(o.type), display_text: o.value ?? name, token: o.token, flags: optional }));
    }
  }
  for (const a of spec.args) {
    args.push(RespMap.of({ name: a.name, type: docType(a.type), display_text: a.name, ...(a.optional ? { flags: optional } : {}) }));
  }
  return RespMap.of({
    summary: spec.summary,
    since: spec.since,
    group: 'module',
    ...(spec.complexity ? { complexity: spec.complexity } : {}),
    module: 'LLM',
    arguments: args,
  });
}
