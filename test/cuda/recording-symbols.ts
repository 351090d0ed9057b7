// The symbol table of a fake native library: every call is recorded, a test can make the next
// call of a function fail with a status, and unimplemented functions say so by name.

export interface RecordedCall {
  readonly name: string;
  readonly args: readonly unknown[];
}

export interface RecordingState {
  readonly calls: RecordedCall[];
  /** Function name → the status its next call returns instead of running. */
  readonly failNext: Map<string, number>;
  /** Also push each call's name here, to see the calls of several fakes in one order. */
  readonly log?: string[];
}

export function recordingSymbols<T>(library: string, implementation: Record<string, (...args: never[]) => unknown>, state: RecordingState): T {
  return new Proxy({}, {
    get: (_, name: string) => (...args: never[]) => {
      state.calls.push({ name, args });
      state.log?.push(name);
      const failure = state.failNext.get(name);
      if (failure !== undefined) {
        state.failNext.delete(name);
        return failure;
      }
      const fn = implementation[name];
      if (!fn) throw new Error(`the fake ${library} does not implement ${name}`);
      return fn(...args);
    },
  }) as T;
}
