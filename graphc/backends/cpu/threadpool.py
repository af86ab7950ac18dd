"""A persistent thread pool written in LLVM IR over POSIX threads.

It lives in the runtime library (runtime_lib.py), so JIT-compiled graphs and ahead-of-time
shared objects use the very same code, with no dependency beyond libc/libpthread::

    void graphc_parallel_for(void (*task)(void *ctx, int64_t i), void *ctx, int64_t n, int64_t threads)

runs ``task(ctx, i)`` for every ``i`` in ``[0, n)`` on up to ``threads`` threads (the caller is one of
them) and returns when all are done.  Tasks are claimed one at a time from an atomic counter, so
uneven tasks balance themselves.

* Workers are started on first need and then live for the whole process, blocked on a condition
  variable between jobs: no thread is created per call.  The pool grows to the largest ``threads``
  asked for; a job with fewer threads leaves the others asleep.
* One job runs at a time.  A caller that finds the pool busy (another Python thread's call, or a
  nested parallel region) runs its tasks itself, serially: never a deadlock, never a wrong result.
* After ``fork()`` the child has no workers: the pool remembers the process id that started them and,
  in another process, forgets them and starts its own (``pthread_atfork`` is not a dynamic symbol in
  glibc, so it cannot be called from JIT code).
* The synchronisation objects are zero-initialised globals, which glibc and musl define to be the
  default-initialised mutex and condition variable (``PTHREAD_*_INITIALIZER``); storage is 64 bytes
  each, above what any Linux ABI uses.
"""

from __future__ import annotations

from llvmlite import ir

PARALLEL_FOR = "graphc_parallel_for"
MAX_WORKERS = 255  # the most threads a job may ask for, beyond the caller
SPIN_CYCLES = 400_000  # cycle-counter ticks of polling a shared word before sleeping (~0.1 ms)

I8P = ir.IntType(8).as_pointer()
I32 = ir.IntType(32)
I64 = ir.IntType(64)
VOID = ir.VoidType()
TASK_TYPE = ir.FunctionType(VOID, [I8P, I64])
PARALLEL_FOR_TYPE = ir.FunctionType(VOID, [TASK_TYPE.as_pointer(), I8P, I64, I64])
_SYNC_BYTES = 64


def declare_parallel_for(module: ir.Module, suffix: str = "") -> ir.Function:
    """``graphc_parallel_for`` (+ ``suffix``, which names the runtime library's target) declared in
    ``module`` (defined by the runtime library)."""
    existing = module.globals.get(PARALLEL_FOR + suffix)
    if existing is not None:
        return existing
    return ir.Function(module, PARALLEL_FOR_TYPE, PARALLEL_FOR + suffix)


class _Pool:
    def __init__(self, module: ir.Module, suffix: str = "") -> None:
        self.m = module
        self.suffix = suffix
        sync = ir.ArrayType(ir.IntType(8), _SYNC_BYTES)
        self.mutex = self._global("graphc_pool_mutex", sync)
        self.work_cond = self._global("graphc_pool_work", sync)
        self.done_cond = self._global("graphc_pool_done", sync)
        self.submit = self._global("graphc_pool_submit", sync)
        self.started = self._global("graphc_pool_started", I64)  # workers running (guarded by submit)
        self.owner = self._global("graphc_pool_owner", I32)  # the process id the workers belong to
        self.generation = self._global("graphc_pool_generation", I64)  # job number (guarded by mutex)
        self.active = self._global("graphc_pool_active", I64)  # workers taking part in the job
        self.pending = self._global("graphc_pool_pending", I64)  # of those, still running
        self.task = self._global("graphc_pool_task", TASK_TYPE.as_pointer())
        self.ctx = self._global("graphc_pool_ctx", I8P)
        self.count = self._global("graphc_pool_count", I64)
        self.next = self._global("graphc_pool_next", I64)  # next task index (atomic)

        def extern(name: str, ret: ir.Type, args: list[ir.Type]) -> ir.Function:
            return module.globals.get(name) or ir.Function(module, ir.FunctionType(ret, args), name)

        self.lock = extern("pthread_mutex_lock", I32, [I8P])
        self.trylock = extern("pthread_mutex_trylock", I32, [I8P])
        self.unlock = extern("pthread_mutex_unlock", I32, [I8P])
        self.wait = extern("pthread_cond_wait", I32, [I8P, I8P])
        self.broadcast = extern("pthread_cond_broadcast", I32, [I8P])
        self.worker_type = ir.FunctionType(I8P, [I8P])
        self.create = extern("pthread_create", I32, [I64.as_pointer(), I8P, self.worker_type.as_pointer(), I8P])
        self.detach = extern("pthread_detach", I32, [I64])
        self.getpid = extern("getpid", I32, [])
        self.memset = extern("llvm.memset.p0i8.i64", VOID, [I8P, ir.IntType(8), I64, ir.IntType(1)])

    def _global(self, name: str, typ: ir.Type) -> ir.GlobalVariable:
        g = ir.GlobalVariable(self.m, typ, name)
        g.linkage = "internal"
        g.initializer = ir.Constant(typ, None)
        g.align = 16
        return g

    def _function(self, name: str, ftype: ir.FunctionType, internal: bool = True) -> tuple[ir.Function, ir.IRBuilder]:
        fn = ir.Function(self.m, ftype, name)
        if internal:
            fn.linkage = "internal"
        fn.attributes.add("nounwind")
        return fn, ir.IRBuilder(fn.append_basic_block("entry"))

    @staticmethod
    def _p(b: ir.IRBuilder, g: ir.GlobalVariable) -> ir.Value:
        return b.bitcast(g, I8P)

    def emit(self) -> ir.Function:
        run_tasks = self._emit_run_tasks()
        worker = self._emit_worker(run_tasks)
        child = self._emit_fork_child()
        return self._emit_parallel_for(run_tasks, worker, child)

    def _emit_run_tasks(self) -> ir.Function:
        """run_tasks(task, ctx, n): claim and run tasks until none are left."""
        fn, b = self._function("graphc_pool_run_tasks", ir.FunctionType(VOID, [TASK_TYPE.as_pointer(), I8P, I64]))
        task, ctx, n = fn.args
        loop = fn.append_basic_block("claim")
        body = fn.append_basic_block("run")
        done = fn.append_basic_block("done")
        b.branch(loop)
        b.position_at_end(loop)
        i = b.atomic_rmw("add", self.next, ir.Constant(I64, 1), "monotonic")
        b.cbranch(b.icmp_signed("<", i, n), body, done)
        b.position_at_end(body)
        b.call(task, [ctx, i])
        b.branch(loop)
        b.position_at_end(done)
        b.ret_void()
        return fn

    def _spin(self, b: ir.IRBuilder, fn: ir.Function, word: ir.GlobalVariable, equal: bool, value: ir.Value,
              name: str) -> None:
        """Poll ``word`` (atomically, without the mutex) for up to SPIN_CYCLES ticks of the CPU's cycle
        counter while it is ``equal`` (or, with ``equal=False``, not equal) to ``value``: a wake-up that
        comes soon (the next parallel loop of a training step, a few microseconds later) is seen without
        sleeping on a condition variable, which costs tens of microseconds.  Reading the counter between
        polls also paces the loop."""
        clock = self.m.globals.get("llvm.readcyclecounter") or ir.Function(
            self.m, ir.FunctionType(I64, []), "llvm.readcyclecounter")
        start = b.call(clock, [])
        head = fn.append_basic_block(f"{name}.spin")
        body = fn.append_basic_block(f"{name}.spin.body")
        done = fn.append_basic_block(f"{name}.spin.done")
        b.branch(head)
        b.position_at_end(head)
        elapsed = b.sub(b.call(clock, []), start)
        b.cbranch(b.icmp_unsigned("<", elapsed, ir.Constant(I64, SPIN_CYCLES)), body, done)
        b.position_at_end(body)
        keep = b.icmp_signed("==" if equal else "!=", b.load_atomic(word, "monotonic", 8), value)
        b.cbranch(keep, head, done)
        b.position_at_end(done)

    def _emit_worker(self, run_tasks: ir.Function) -> ir.Function:
        """worker(index): wait for a new job, take part if its index is below the job's thread count."""
        fn, b = self._function("graphc_pool_worker", self.worker_type)
        index = b.ptrtoint(fn.args[0], I64)
        seen_slot = b.alloca(I64)
        b.store(ir.Constant(I64, 0), seen_slot)
        b.call(self.lock, [self._p(b, self.mutex)])
        wait_head = fn.append_basic_block("wait")
        idle = fn.append_basic_block("idle")
        woke = fn.append_basic_block("woke")
        work = fn.append_basic_block("work")
        b.branch(wait_head)
        b.position_at_end(wait_head)
        generation = b.load_atomic(self.generation, "monotonic", 8)
        b.cbranch(b.icmp_signed("==", generation, b.load(seen_slot)), idle, woke)
        b.position_at_end(idle)
        b.call(self.unlock, [self._p(b, self.mutex)])
        self._spin(b, fn, self.generation, True, b.load(seen_slot), "worker")
        b.call(self.lock, [self._p(b, self.mutex)])
        sleep = fn.append_basic_block("sleep")
        unchanged = b.icmp_signed("==", b.load_atomic(self.generation, "monotonic", 8), b.load(seen_slot))
        b.cbranch(unchanged, sleep, wait_head)
        b.position_at_end(sleep)
        b.call(self.wait, [self._p(b, self.work_cond), self._p(b, self.mutex)])
        b.branch(wait_head)
        b.position_at_end(woke)
        b.store(generation, seen_slot)
        b.cbranch(b.icmp_signed("<", index, b.load(self.active)), work, wait_head)
        b.position_at_end(work)
        task, ctx, count = b.load(self.task), b.load(self.ctx), b.load(self.count)
        b.call(self.unlock, [self._p(b, self.mutex)])
        b.call(run_tasks, [task, ctx, count])
        b.call(self.lock, [self._p(b, self.mutex)])
        left = b.sub(b.load_atomic(self.pending, "monotonic", 8), ir.Constant(I64, 1))
        b.store_atomic(left, self.pending, "release", 8)
        last = fn.append_basic_block("last")
        b.cbranch(b.icmp_signed("==", left, ir.Constant(I64, 0)), last, wait_head)
        b.position_at_end(last)
        b.call(self.broadcast, [self._p(b, self.done_cond)])
        b.branch(wait_head)
        return fn

    def _emit_fork_child(self) -> ir.Function:
        """In a forked child no worker exists: forget them and reset the pool's mutex and conditions (the
        submit lock, which this thread holds, is left alone)."""
        fn, b = self._function("graphc_pool_fork_child", ir.FunctionType(VOID, []))
        for g in (self.mutex, self.work_cond, self.done_cond):
            b.call(self.memset, [self._p(b, g), ir.Constant(ir.IntType(8), 0), ir.Constant(I64, _SYNC_BYTES),
                                 ir.Constant(ir.IntType(1), 0)])
        for g in (self.started, self.generation, self.active, self.pending):
            b.store(ir.Constant(I64, 0), g)
        b.ret_void()
        return fn

    def _emit_parallel_for(self, run_tasks: ir.Function, worker: ir.Function, child: ir.Function) -> ir.Function:
        fn, b = self._function(PARALLEL_FOR + self.suffix, PARALLEL_FOR_TYPE, internal=False)
        task, ctx, n, threads = fn.args
        serial = fn.append_basic_block("serial")
        try_pool = fn.append_basic_block("try_pool")
        pooled = fn.append_basic_block("pooled")
        one = ir.Constant(I64, 1)
        many = b.and_(b.icmp_signed(">", threads, one), b.icmp_signed(">", n, one))
        b.cbranch(many, try_pool, serial)

        b.position_at_end(serial)
        serial_loop = fn.append_basic_block("serial.loop")
        serial_body = fn.append_basic_block("serial.body")
        serial_done = fn.append_basic_block("serial.done")
        pre = b.block
        b.branch(serial_loop)
        b.position_at_end(serial_loop)
        i = b.phi(I64)
        i.add_incoming(ir.Constant(I64, 0), pre)
        b.cbranch(b.icmp_signed("<", i, n), serial_body, serial_done)
        b.position_at_end(serial_body)
        b.call(task, [ctx, i])
        i.add_incoming(b.add(i, one), serial_body)
        b.branch(serial_loop)
        b.position_at_end(serial_done)
        b.ret_void()

        b.position_at_end(try_pool)
        busy = b.icmp_signed("!=", b.call(self.trylock, [self._p(b, self.submit)]), ir.Constant(I32, 0))
        b.cbranch(busy, serial, pooled)

        b.position_at_end(pooled)
        wanted = b.sub(threads, one)
        limit = ir.Constant(I64, MAX_WORKERS)
        wanted = b.select(b.icmp_signed(">", wanted, limit), limit, wanted)
        self._start_workers(b, fn, worker, child, wanted)
        started = b.load(self.started)
        helpers = b.select(b.icmp_signed("<", started, wanted), started, wanted)
        b.call(self.lock, [self._p(b, self.mutex)])
        b.store(task, self.task)
        b.store(ctx, self.ctx)
        b.store(n, self.count)
        b.store_atomic(ir.Constant(I64, 0), self.next, "monotonic", 8)
        b.store(helpers, self.active)
        b.store_atomic(helpers, self.pending, "monotonic", 8)
        b.store_atomic(b.add(b.load_atomic(self.generation, "monotonic", 8), one), self.generation, "release", 8)
        b.call(self.broadcast, [self._p(b, self.work_cond)])
        b.call(self.unlock, [self._p(b, self.mutex)])
        b.call(run_tasks, [task, ctx, n])
        self._spin(b, fn, self.pending, False, ir.Constant(I64, 0), "join")
        b.call(self.lock, [self._p(b, self.mutex)])
        wait_head = fn.append_basic_block("join")
        wait_body = fn.append_basic_block("join.wait")
        joined = fn.append_basic_block("joined")
        b.branch(wait_head)
        b.position_at_end(wait_head)
        b.cbranch(b.icmp_signed("==", b.load_atomic(self.pending, "acquire", 8), ir.Constant(I64, 0)), joined,
                  wait_body)
        b.position_at_end(wait_body)
        b.call(self.wait, [self._p(b, self.done_cond), self._p(b, self.mutex)])
        b.branch(wait_head)
        b.position_at_end(joined)
        b.call(self.unlock, [self._p(b, self.mutex)])
        b.call(self.unlock, [self._p(b, self.submit)])
        b.ret_void()
        return fn

    def _start_workers(self, b: ir.IRBuilder, fn: ir.Function, worker: ir.Function, child: ir.Function,
                       wanted: ir.Value) -> None:
        """Start workers until ``wanted`` run (the caller holds the submit lock); a failed
        pthread_create just leaves the pool smaller.  In a forked child the parent's workers do not
        exist: the pool is reset first."""
        handle = b.alloca(I64)
        forked = fn.append_basic_block("forked")
        check = fn.append_basic_block("start.check")
        body = fn.append_basic_block("start")
        done = fn.append_basic_block("start.done")
        pid = b.call(self.getpid, [])
        b.cbranch(b.icmp_signed("!=", b.load(self.owner), pid), forked, check)
        b.position_at_end(forked)
        b.call(child, [])
        b.store(pid, self.owner)
        b.branch(check)
        b.position_at_end(check)
        started = b.load(self.started)
        b.cbranch(b.icmp_signed("<", started, wanted), body, done)
        b.position_at_end(body)
        status = b.call(self.create, [handle, ir.Constant(I8P, None), worker, b.inttoptr(started, I8P)])
        ok = fn.append_basic_block("start.ok")
        b.cbranch(b.icmp_signed("==", status, ir.Constant(I32, 0)), ok, done)
        b.position_at_end(ok)
        b.call(self.detach, [b.load(handle)])
        b.store(b.add(started, ir.Constant(I64, 1)), self.started)
        b.branch(check)
        b.position_at_end(done)


def emit_thread_pool(module: ir.Module, suffix: str = "") -> ir.Function:
    """Define ``graphc_parallel_for`` + ``suffix`` (and the pool behind it) in ``module``."""
    return _Pool(module, suffix).emit()


__all__ = ["MAX_WORKERS", "PARALLEL_FOR", "TASK_TYPE", "declare_parallel_for", "emit_thread_pool"]
