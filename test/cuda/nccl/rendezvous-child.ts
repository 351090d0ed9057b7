// One rank in its own process for rendezvous.test.ts: fetches the id from rank 0 and prints it
// as hex (or the error's code and message), then exits.
//   <runtime> test/cuda/nccl/rendezvous-child.ts <port> <rank> <nranks>
import { fetchUniqueId } from "../../../src/cuda/nccl/rendezvous.ts";

const [port, rank, nranks] = process.argv.slice(2).map(Number) as [number, number, number];
try {
  const id = await fetchUniqueId({ host: "127.0.0.1", port, rank, nranks, timeoutMs: 20_000 });
  console.log(`id ${Array.from(id, (b) => b.toString(16).padStart(2, "0")).join("")}`);
} catch (error) {
  console.log(`error ${(error as { code?: string }).code} ${(error as Error).message}`);
}
