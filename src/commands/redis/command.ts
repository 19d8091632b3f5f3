/**
 * COMMAND, COMMAND COUNT, COMMAND INFO, COMMAND DOCS, COMMAND LIST and COMMAND GETKEYS with the
 * LLM.* entries merged into the backend's answer (so redis-cli shows syntax hints for them).
 */
import { encode, joinArrayFrame, splitArrayFrame, decodeFrame, RawReply, type Proto, type RespValue } from '../../protocol/resp.js';
import { commandDocs, commandInfo } from '../docs.js';
import { globToRegExp } from '../../util/glob.js';
import { errorPlan, type Intercept, type Plan } from '../plan.js';
import { LLM_COMMANDS, commandTable } from '../table.js';
import { appendToArray } from './module.js';

const isOurs = (name: string) => commandTable.has(name.toLowerCase());


function allInfos(proto: Proto): Buffer[] {
  return LLM_COMMANDS.map((c) => encode(commandInfo(c), proto));
}

/** Name, docs pairs: the entries of COMMAND DOCS's map (a flat array in RESP2). */
function allDocs(proto: Proto): Buffer[] {
  return LLM_COMMANDS.flatMap((c) => [encode(c.name.toLowerCase()), encode(commandDocs(c), proto)]);
}

/** Forwards `args`, then replaces the reply with `merge(backend elements) `. */
function forwardMerged(args: Buffer[], merge: (elements: Buffer[]) => Buffer[]): Plan {
  return {
    kind: 'forward',
    args,
    hooks: {
      transform(frame) {
        const split = splitArrayFrame(frame);
        if (!split) return frame;
        return joinArrayFrame(split.type, merge(split.elements));
      },
    },
  };
}

export const command: Intercept = (args, view, services) => {
  const standalone = services.mode === 'standalone';
  const proto = view.proto;
  const sub = args[1]?.toString('latin1').toLowerCase();
  const local = (v: RespValue): Plan => ({ kind: 'local', run: () => v });
  if (sub === undefined) {
    if (standalone) return rawArray(allInfos(proto));
    return { kind: 'forward', hooks: { transform: (f) => appendToArray(f, allInfos(proto)) } };
  }
  switch (sub) {
    case 'count': {
      if (standalone) return local(LLM_COMMANDS.length);
      return {
        kind: 'forward',
        hooks: {
          transform(frame) {
            const { value } = decodeFrame(frame);
            return typeof value === 'number' ? encode(value + LLM_COMMANDS.length) : frame;
          },
        },
      };
    }
    case 'info':
    case 'docs': {
      const names = args.slice(2).map((a) => a.toString('utf8'));
      const one = (n: string): Buffer[] => {
        const spec = commandTable.get(n.toLowerCase());
        if (sub === 'info') return [spec ? encode(commandInfo(spec), proto) : encode(null, proto)];
        return spec ? [encode(spec.name.toLowerCase()), encode(commandDocs(spec), proto)] : [];
      };
      if (names.length === 0) {
        if (standalone) return sub === 'info' ? rawArray(allInfos(proto)) : rawMap(allDocs(proto), proto);
        return { kind: 'forward', hooks: { transform: (f) => appendToArray(f, sub === 'info' ? allInfos(proto) : allDocs(proto)) } };
      }
      const others = names.filter((n) => !isOurs(n));
      if (others.length === 0 || standalone) {
        const parts = names.flatMap((n) => (isOurs(n) ? one(n) : sub === 'info' ? [encode(null, proto)] : []));
        return sub === 'info' ? rawArray(parts) : rawMap(parts, proto);
      }
      return forwardMerged([args[0], args[1], ...others.map((n) => Buffer.from(n))], (elements) => {
        if (sub === 'docs') return [...elements, ...names.filter(isOurs).flatMap(one)];
        // INFO keeps the requested order: take the backend's answers in sequence.
        let j = 0;
        return names.flatMap((n) => (isOurs(n) ? one(n) : [elements[j++]]));
      });
    }
    case 'list': {
      const ours = LLM_COMMANDS.map((c) => c.name.toLowerCase());
      if (args.length === 2) {
        if (standalone) return local(ours);
        return { kind: 'forward', hooks: { transform: (f) => appendToArray(f, ours.map((n) => encode(n))) } };
      }
      if (args.length === 5 && args[2].toString('latin1').toLowerCase() === 'filterby') {
        const kind = args[3].toString('latin1').toLowerCase();
        const value = args[4].toString('utf8');
        let mine: string[] = [];
        if (kind === 'module') mine = value.toLowerCase() === 'llm' ? ours : [];
        else if (kind === 'pattern') mine = ours.filter((n) => globToRegExp(value).test(n));
        else if (kind === 'aclcat') mine = LLM_COMMANDS.filter((c) => c.aclCategories.includes(`@${value.toLowerCase()}`)).map((c) => c.name.toLowerCase());
        if (kind === 'module' || standalone) return local(mine);
        return { kind: 'forward', hooks: { transform: (f) => appendToArray(f, mine.map((n) => encode(n))) } };
      }
      return standalone ? errorPlan('syntax error') : null;
    }
    case 'getkeys':
    case 'getkeysandflags': {
      const target = args[2]?.toString('utf8');
      if (!target || !isOurs(target)) return standalone ? errorPlan('Invalid command specified') : null;
      if (args.length < 4) return errorPlan('Invalid number of arguments specified for command');
      const spec = commandTable.get(target.toLowerCase())!;
      const key = Buffer.from(args[3]);
      return local(sub === 'getkeys' ? [key] : [[key, [spec.keySpec.access, ...(spec.keySpec.op ? [spec.keySpec.op] : [])]]]);
    }
    default:
      return standalone ? errorPlan(`unknown subcommand '${sub}'. Try COMMAND HELP.`) : null;
  }
};

function rawArray(parts: Buffer[]): Plan {
  return { kind: 'local', run: () => new RawReply(joinArrayFrame(42, parts)) };
}

/** Field, value pairs as COMMAND DOCS answers them: a map in RESP3, a flat array in RESP2. */
function rawMap(parts: Buffer[], proto: Proto): Plan {
  return { kind: 'local', run: () => new RawReply(joinArrayFrame(proto === 3 ? 37 : 42, parts)) };
}
