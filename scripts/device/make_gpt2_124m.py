#!/usr/bin/env python3
"""Writes a GPT-2-124M-sized random checkpoint (HF layout: config.json + model.safetensors, fp32, N(0, 0.02)
weights cut from one pool of 1M draws at varying offsets (no numpy needed; a speed model needs no fresh draws),
unit LayerNorms, zero biases) for the device speed check, with the tokenizer files of TOKENIZER_DIR
(any byte-level BPE whose ids fit the 50257-token vocabulary) so `generate --data` can batch it.
usage: make_gpt2_124m.py OUTDIR TOKENIZER_DIR"""
import json
import os
import random
import shutil
import struct
import sys
from array import array

out, tok = sys.argv[1], sys.argv[2]
d, layers, heads, vocab, positions = 768, 12, 12, 50257, 1024
rng = random.Random(0)
POOL = 1 << 20
pool = array("f", (rng.gauss(0.0, 0.02) for _ in range(POOL))).tobytes()
pool += pool  # any offset < POOL can read POOL floats on


def count(shape):
    n = 1
    for s in shape:
        n *= s
    return n
shapes = {"transformer.wte.weight": [vocab, d], "transformer.wpe.weight": [positions, d],
          "transformer.ln_f.weight": [d], "transformer.ln_f.bias": [d]}
for i in range(layers):
    p = f"transformer.h.{i}."
    shapes.update({p + "ln_1.weight": [d], p + "ln_1.bias": [d], p + "ln_2.weight": [d], p + "ln_2.bias": [d],
                   p + "attn.c_attn.weight": [d, 3 * d], p + "attn.c_attn.bias": [3 * d],
                   p + "attn.c_proj.weight": [d, d], p + "attn.c_proj.bias": [d],
                   p + "mlp.c_fc.weight": [d, 4 * d], p + "mlp.c_fc.bias": [4 * d],
                   p + "mlp.c_proj.weight": [4 * d, d], p + "mlp.c_proj.bias": [d]})
header, offset = {"__metadata__": {"format": "pt"}}, 0
for name in sorted(shapes):
    n = count(shapes[name]) * 4
    header[name] = {"dtype": "F32", "shape": shapes[name], "data_offsets": [offset, offset + n]}
    offset += n
raw = json.dumps(header).encode()
raw += b" " * (-len(raw) % 8)
os.makedirs(out, exist_ok=True)
with open(os.path.join(out, "model.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(raw)))
    f.write(raw)
    for name in sorted(shapes):
        shape = shapes[name]
        n = count(shape)
        if name.endswith("bias"):
            f.write(bytes(4 * n))
        elif len(shape) == 1:
            f.write(array("f", [1.0]).tobytes() * n)
        else:
            left = n
            while left:
                take = min(left, POOL)
                start = rng.randrange(POOL)
                f.write(pool[4 * start:4 * (start + take)])
                left -= take
config = {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "activation_function": "gelu_new",
          "n_embd": d, "n_head": heads, "n_layer": layers, "n_positions": positions, "n_inner": None,
          "vocab_size": vocab, "layer_norm_epsilon": 1e-5, "bos_token_id": 50256, "eos_token_id": 50256,
          "pad_token_id": 50256, "attn_pdrop": 0.0, "embd_pdrop": 0.0, "resid_pdrop": 0.0,
          "scale_attn_weights": True, "scale_attn_by_inverse_layer_idx": False, "reorder_and_upcast_attn": False,
          "initializer_range": 0.02, "torch_dtype": "float32", "use_cache": True}
json.dump(config, open(os.path.join(out, "config.json"), "w"), indent=1)
for f in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt"):
    if os.path.exists(os.path.join(tok, f)):
        shutil.copy(os.path.join(tok, f), out)
print(f"wrote {out}: {offset / 1e6:.0f} MB")
