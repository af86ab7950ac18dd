"""A character-level LSTM language model (a small char-rnn), written with ``gc.scan`` and trained with Adam.

The text is 25 of Shakespeare's sonnets (examples/data/shakespeare_sonnets.txt, about 15 KB of ASCII,
modern spelling; public domain: first printed in 1609).  The last ~10% of it is held out.  Each training
step takes a batch of windows cut from the text at random offsets (a seeded NumPy Generator, so every run
is the same), time-major: ``inputs`` and ``targets`` of shape ``(T, batch)``, the targets being the inputs
shifted by one character.  The characters go through an embedding (``gc.take``), then an LSTM cell that
``gc.scan`` runs over the T steps: the four gates come from one matmul of the input row and one of the
previous hidden state.  A dense layer maps every hidden state to logits over the vocabulary, and the loss
is ``gc.mean(gc.softmax_cross_entropy(logits, targets))``.  ``gc.function(..., updates=Adam(...).updates(
loss, params))`` compiles the whole training step, forward scan and backward scan (back-propagation
through time) included, into one native call.

It checks the first loss against a NumPy LSTM, that the loss falls well below the entropy of the text's
character frequencies (what a model without any context could reach) on both the training and the
held-out text, and then samples ~200 characters from a compiled one-step function (temperature sampling,
seeded).  ``--steps``, ``--hidden``, ``--seq-len``, ``--batch`` and ``--lr`` make longer runs.  ``--device
reference`` runs the same model on the NumPy interpreter (same losses, slower), ``--device cuda`` on a GPU
(``cuda-sim``, the emulator, works too but is slow at these sizes).
"""

from __future__ import annotations

import argparse
import pathlib
import time

import numpy as np

import graphc as gc

DATA = pathlib.Path(__file__).parent / "data" / "shakespeare_sonnets.txt"
EMBED = 32
HELD_OUT = 0.1        # the fraction of the text (at its end) kept out of training
EVAL_WINDOWS = 32     # held-out windows evaluated before and after training
PRIME = "Shall I compare thee"


def load_text(path: pathlib.Path) -> tuple[str, list[str], np.ndarray]:
    """The text, its sorted vocabulary of characters, and the text as int64 character ids."""
    text = path.read_text(encoding="ascii")
    vocab = sorted(set(text))
    index = {ch: k for k, ch in enumerate(vocab)}
    return text, vocab, np.array([index[ch] for ch in text], np.int64)


def unigram_entropy(ids: np.ndarray, vocab_size: int) -> float:
    """The cross-entropy (nats per character) of predicting ``ids`` from their own character frequencies."""
    freq = np.bincount(ids, minlength=vocab_size) / len(ids)
    freq = freq[freq > 0]
    return float(-np.sum(freq * np.log(freq)))


def make_batch(rng: np.random.Generator, ids: np.ndarray, seq_len: int, batch: int) -> tuple[np.ndarray, np.ndarray]:
    """``batch`` windows of ``seq_len + 1`` characters at random offsets: time-major inputs and targets (T, batch)."""
    starts = rng.integers(0, len(ids) - seq_len - 1, batch)
    windows = np.stack([ids[s:s + seq_len + 1] for s in starts], axis=1)
    return windows[:-1], windows[1:]


def init_params(rng: np.random.Generator, vocab_size: int, hidden: int) -> dict[str, np.ndarray]:
    """Initial weights: small uniform matrices, a forget-gate bias of 1 (gates ordered i, f, o, g)."""
    def uniform(n_in: int, n_out: int) -> np.ndarray:
        """Glorot-uniform: in +-sqrt(6 / (n_in + n_out))."""
        bound = np.sqrt(6.0 / (n_in + n_out))
        return rng.uniform(-bound, bound, (n_in, n_out)).astype(np.float32)

    bias = np.zeros(4 * hidden, np.float32)
    bias[hidden:2 * hidden] = 1.0   # remember by default at the start, so that gradients reach back in time
    return {"embedding": (rng.standard_normal((vocab_size, EMBED)) * 0.1).astype(np.float32),
            "w_x": uniform(EMBED, 4 * hidden), "w_h": uniform(hidden, 4 * hidden), "b": bias,
            "w_y": uniform(hidden, vocab_size) * np.float32(0.5), "b_y": np.zeros(vocab_size, np.float32)}


def lstm_cell(x_t: gc.Tensor, h: gc.Tensor, c: gc.Tensor, w_x: gc.Tensor, w_h: gc.Tensor,
              b: gc.Tensor) -> tuple[gc.Tensor, gc.Tensor]:
    """One LSTM step on a batch: input rows ``x_t`` (batch, embed), previous ``h`` and ``c`` (batch, hidden)."""
    i, f, o, g = gc.split(x_t @ w_x + h @ w_h + b, 4, axis=1)
    c_new = gc.sigmoid(f) * c + gc.sigmoid(i) * gc.tanh(g)
    return gc.sigmoid(o) * gc.tanh(c_new), c_new


def numpy_loss(params: dict[str, np.ndarray], inputs: np.ndarray, targets: np.ndarray) -> float:
    """The same model's mean loss on one batch, in float64 NumPy (zero initial state)."""
    p = {k: v.astype(np.float64) for k, v in params.items()}
    hidden = p["w_h"].shape[0]
    h = c = np.zeros((inputs.shape[1], hidden))
    losses = []
    for x_t, y_t in zip(inputs, targets):
        z = p["embedding"][x_t] @ p["w_x"] + h @ p["w_h"] + p["b"]
        i, f, o, g = np.split(z, 4, axis=1)
        c = 1 / (1 + np.exp(-f)) * c + 1 / (1 + np.exp(-i)) * np.tanh(g)
        h = 1 / (1 + np.exp(-o)) * np.tanh(c)
        logits = h @ p["w_y"] + p["b_y"]
        top = logits.max(axis=1, keepdims=True)
        log_probs = logits - top - np.log(np.sum(np.exp(logits - top), axis=1, keepdims=True))
        losses.append(-log_probs[np.arange(len(y_t)), y_t])
    return float(np.mean(losses))


def sample(step: gc.Function, vocab: list[str], hidden: int, prime: str, length: int, temperature: float,
           rng: np.random.Generator) -> str:
    """Feed ``prime`` through the one-step function, then draw ``length`` characters from its distribution."""
    index = {ch: k for k, ch in enumerate(vocab)}
    h = c = np.zeros((1, hidden), np.float32)
    temp = np.float32(temperature)
    for ch in prime:
        probs, h, c = step(np.array([index[ch]], np.int64), h, c, temp)
    out = []
    for _ in range(length):
        p = probs[0].astype(np.float64)
        k = int(rng.choice(len(vocab), p=p / p.sum()))
        out.append(vocab[k])
        probs, h, c = step(np.array([k], np.int64), h, c, temp)
    return prime + "".join(out)


def main(device: str = "cpu", steps: int = 200, hidden: int = 128, seq_len: int = 32, batch: int = 32,
         lr: float = 0.01, print_every: int = 20, sample_len: int = 200, temperature: float = 0.6,
         seed: int = 0) -> None:
    """Build the model, train it, check the losses and print a sample; exit non-zero if a check fails."""
    rng = np.random.default_rng(seed)
    text, vocab, ids = load_text(DATA)
    split = int(len(ids) * (1 - HELD_OUT))
    train_ids, test_ids = ids[:split], ids[split:]
    n_vocab = len(vocab)
    floor = unigram_entropy(train_ids, n_vocab)
    print(f"{len(text)} characters ({len(train_ids)} for training), vocabulary {n_vocab}: uniform guess "
          f"{np.log(n_vocab):.3f} nats/char, character frequencies {floor:.3f}")

    # --- the model ---
    init = init_params(rng, n_vocab, hidden)
    params = {name: gc.Variable(value, name=name) for name, value in init.items()}
    inputs = gc.placeholder("int64", (None, None), name="inputs")     # (T, batch) character ids
    targets = gc.placeholder("int64", (None, None), name="targets")
    h0 = gc.placeholder("float32", (None, hidden), name="h0")
    c0 = gc.placeholder("float32", (None, hidden), name="c0")

    def step_fn(x_t: gc.Tensor, h: gc.Tensor, c: gc.Tensor) -> list[gc.Tensor]:
        """scan's step: the current input row, then the previous h and c; returns the new h and c."""
        return list(lstm_cell(x_t, h, c, params["w_x"], params["w_h"], params["b"]))

    embedded = gc.take(params["embedding"], inputs, axis=0)            # (T, batch, EMBED)
    hs, _ = gc.scan(step_fn, sequences=embedded, outputs_info=[h0, c0])
    logits = hs @ params["w_y"] + params["b_y"]                        # (T, batch, vocab)
    loss = gc.mean(gc.softmax_cross_entropy(logits, targets))

    opt = gc.optimizers.Adam(lr)
    train = gc.function([inputs, targets, h0, c0], loss, updates=opt.updates(loss, list(params.values())),
                        name="train", device=device)
    evaluate = gc.function([inputs, targets, h0, c0], loss, name="evaluate", device=device)

    # the one-step function for sampling: the same cell and weights, one character at a time
    char = gc.placeholder("int64", (None,), name="char")
    temperature_t = gc.placeholder("float32", (), name="temperature")
    h1, c1 = lstm_cell(gc.take(params["embedding"], char, axis=0), h0, c0, params["w_x"], params["w_h"],
                       params["b"])
    probs = gc.softmax((h1 @ params["w_y"] + params["b_y"]) / temperature_t)
    one_step = gc.function([char, h0, c0, temperature_t], [probs, h1, c1], name="one_step", device=device)

    # --- train ---
    zeros = np.zeros((batch, hidden), np.float32)
    test_x, test_y = make_batch(np.random.default_rng(seed + 1), test_ids, seq_len, EVAL_WINDOWS)
    test_zeros = np.zeros((EVAL_WINDOWS, hidden), np.float32)
    test_before = float(evaluate(test_x, test_y, test_zeros, test_zeros))
    losses: list[float] = []
    expected_first = first_call = float("nan")
    start = time.perf_counter()
    for step in range(steps):
        x_batch, y_batch = make_batch(rng, train_ids, seq_len, batch)
        if step == 0:
            expected_first = numpy_loss(init, x_batch, y_batch)
        losses.append(float(train(x_batch, y_batch, zeros, zeros)))
        if step == 0:
            first_call = time.perf_counter() - start    # the first call compiles the training step
            print(f"step    0  loss {losses[0]:.4f}  (uniform guess {np.log(n_vocab):.4f})")
        elif step % print_every == 0 or step == steps - 1:
            recent = losses[-min(print_every, step):]
            print(f"step {step:4d}  loss {losses[-1]:.4f}  (mean of the last {len(recent)} steps: "
                  f"{np.mean(recent):.4f})")
    seconds = time.perf_counter() - start - first_call
    test_after = float(evaluate(test_x, test_y, test_zeros, test_zeros))
    window = min(20, steps)
    first, last = float(np.mean(losses[:window])), float(np.mean(losses[-window:]))
    print(f"first step (compiling it) {first_call:.1f} s, the other {steps - 1} steps {seconds:.1f} s")
    print(f"mean loss of the first {window} steps {first:.3f}, of the last "
          f"{window} {last:.3f}; held-out loss {test_before:.3f} -> {test_after:.3f}")

    # --- sample ---
    text_out = sample(one_step, vocab, hidden, PRIME, sample_len, temperature, np.random.default_rng(seed + 2))
    print(f"sample (temperature {temperature}):\n{text_out}")

    # --- checks ---
    assert np.isclose(losses[0], expected_first, rtol=1e-4), (losses[0], expected_first)
    assert abs(losses[0] - np.log(n_vocab)) < 0.5, f"first loss {losses[0]:.3f}, uniform {np.log(n_vocab):.3f}"
    # a model that ignored the context could at best reach the frequency entropy: demand clearly better
    assert last < floor - 0.6 and last < 0.8 * first, \
        f"the loss did not fall enough: {first:.3f} -> {last:.3f} (character frequencies: {floor:.3f})"
    assert test_after < floor - 0.4 and test_after < 0.8 * test_before, \
        f"held-out loss {test_before:.3f} -> {test_after:.3f} (character frequencies: {floor:.3f})"
    assert len(text_out) == len(PRIME) + sample_len and set(text_out) <= set(vocab)
    print(f"first loss matches NumPy ({expected_first:.4f}); the loss fell from {first:.3f} to {last:.3f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu (default), reference, cuda or cuda-sim")
    parser.add_argument("--steps", type=int, default=200, help="training steps (default 200)")
    parser.add_argument("--hidden", type=int, default=128, help="LSTM hidden units (default 128)")
    parser.add_argument("--seq-len", type=int, default=32, help="characters per window, T (default 32)")
    parser.add_argument("--batch", type=int, default=32, help="windows per step (default 32)")
    parser.add_argument("--lr", type=float, default=0.01, help="Adam learning rate (default 0.01)")
    parser.add_argument("--print-every", type=int, default=20, help="print the loss every N steps (default 20)")
    parser.add_argument("--sample-len", type=int, default=200, help="characters to sample (default 200)")
    parser.add_argument("--temperature", type=float, default=0.6, help="sampling temperature (default 0.6)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights, batches and sample (default 0)")
    args = parser.parse_args()
    main(args.device, args.steps, args.hidden, args.seq_len, args.batch, args.lr, args.print_every,
         args.sample_len, args.temperature, args.seed)
