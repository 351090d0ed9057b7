// One rank of a data-parallel run, in a process of its own that trainDataParallel (launcher.ts)
// starts: it connects back to the launcher, receives the job, meets the other ranks (NCCL over
// the TCP rendezvous on cuda:<rank>, or the TCP reducer on the CPU), trains its slice of every
// global batch and reports each step. Rank 0 also writes the checkpoints and the adapter.
//   <runtime> rank-process.ts <launcher port> <rank> <token>
// It ends when the run ends, when it fails (after reporting the error), and at once when the
// connection to the launcher closes (the launcher died or gave up on the run).
import { createConnection } from "node:net";
import { join } from "node:path";
import process from "node:process";
import { CudaContext, NcclCommunicator } from "../../cuda/index.ts";
import { type GradientReducer, NcclGradientReducer } from "./data-parallel.ts";
import { type LauncherMessage, type RankJob, type RankMessage, decodeDataSource, readMessages, reportedError, writeMessage } from "./launcher-protocol.ts";
import { TcpGradientReducer } from "./tcp-reducer.ts";
import { LoraTrainer } from "./trainer.ts";

/** Exit codes: 1 after a reported error, 70 when the launcher is gone or the job never came. */
const exitFailed = 1;
const exitLauncherLost = 70;

const [portText, rankText, token] = process.argv.slice(2);
const rank = Number(rankText);
const socket = createConnection({ host: "127.0.0.1", port: Number(portText) });
let finishing = false;
socket.on("error", () => {});
socket.on("close", () => {
  if (!finishing) process.exit(exitLauncherLost);
});
const send = (message: RankMessage) => writeMessage(socket, message);
/** Flushes what was written to the launcher, then exits. */
const exit = (code: number) => {
  finishing = true;
  socket.end(() => process.exit(code));
  setTimeout(() => process.exit(code), 2_000).unref?.();
};

const stop = new AbortController();
// Ctrl-C reaches every process of the terminal's group: a rank votes to stop, and the run ends
// at the step every rank agrees on (see LoraTrainer.trainStep).
process.on("SIGINT", () => stop.abort());

const job = await new Promise<RankJob>((resolve) => {
  readMessages<LauncherMessage>(socket, (message) => {
    if (message.type === "job") resolve(message.job);
    else if (message.type === "stop") stop.abort();
  }, () => process.exit(exitLauncherLost));
  socket.on("connect", () => send({ type: "hello", rank, token: token ?? "" }));
});

async function connect(job: RankJob): Promise<{ reducer: GradientReducer; close: () => void }> {
  const { host, port, ranks, timeoutMs } = job;
  if (job.device === "cpu") {
    const reducer = await TcpGradientReducer.connect({ host, port, rank, ranks, timeoutMs });
    return { reducer, close: () => reducer.close() };
  }
  const context = CudaContext.create({ device: rank });
  const communicator = await NcclCommunicator.connect(context, { host, port, rank, nranks: ranks, timeoutMs });
  const stream = context.createStream();
  return {
    reducer: new NcclGradientReducer(communicator, context, stream),
    close: () => {
      communicator.dispose();
      stream.dispose();
      context.dispose();
    },
  };
}

async function train(job: RankJob): Promise<void> {
  const { reducer, close } = await connect(job);
  {
    using trainer = await LoraTrainer.create({
      ...job.trainer,
      data: decodeDataSource(job.data),
      ...(job.eval === undefined ? {} : { eval: decodeDataSource(job.eval) }),
      device: job.device === "cpu" ? "cpu" : `cuda:${rank}`,
      reducer,
    });
    send({ type: "ready", step: trainer.step, totalSteps: trainer.totalSteps });
    for await (const report of trainer.run({ signal: stop.signal })) {
      send({ type: "step", report });
      if (rank === 0 && job.checkpointEvery !== undefined && report.step % job.checkpointEvery === 0) {
        await trainer.checkpoint(join(job.checkpointDir!, `step-${report.step}`));
      }
    }
    let evalLoss: number | undefined;
    if (rank === 0) {
      if (job.out !== undefined) await trainer.save(job.out);
      if (job.eval !== undefined) evalLoss = await trainer.evaluate();
    }
    const { base, lora, compute } = trainer.memory;
    send({ type: "done", step: trainer.step, totalSteps: trainer.totalSteps, ...(evalLoss === undefined ? {} : { evalLoss }), memory: { base, lora, compute } });
  }
  // Only after a run that ended well: finalizing an NCCL communicator waits for the other ranks,
  // which a failed run may never bring. A failed rank just exits.
  close();
}

try {
  await train(job);
  exit(0);
} catch (error) {
  send({ type: "error", error: reportedError(error) });
  exit(exitFailed);
}
