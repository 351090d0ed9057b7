// Reference counts for native objects that others depend on. A model must outlive its contexts
// and adapters, and an adapter every context that has it set; JS disposal order and the
// finalizer's order are both arbitrary, so the native free waits until the last dependent let go.

/** One native object's references: its owner's plus one per live dependent. */
export class Lifetime {
  #references = 1;

  constructor(
    readonly what: string,
    private readonly free: () => void,
  ) {}

  /** The lifetime of an object that relies on `owner`: freeing it runs `free`, then lets `owner` go. */
  static dependent(what: string, owner: Lifetime, free: () => void): Lifetime {
    owner.retain();
    return new Lifetime(what, () => {
      free();
      owner.release();
    });
  }

  /** A dependent begins to rely on the object. */
  retain(): void {
    if (this.#references === 0) throw new Error(`gpuffi bug: ${this.what} retained after it was freed`);
    this.#references++;
  }

  /** The owner or a dependent lets go; the last one frees the native object. */
  release(): void {
    if (--this.#references === 0) this.free();
  }
}
