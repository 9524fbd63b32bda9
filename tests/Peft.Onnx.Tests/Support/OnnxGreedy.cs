using Peft.Onnx.Core.Onnx;
using Peft.Onnx.Runtime;
using Peft.Onnx.Exporter.Onnx;
using static Peft.Onnx.Tests.Support.BatchSlices;

namespace Peft.Onnx.Tests.Support;

/// <summary>Greedy decoding of one prompt through an exported decoder-only graph and its KV cache.</summary>
public static class OnnxGreedy
{
    /// <summary>Prompt + up to <paramref name="newTokens"/> tokens, stopping after <paramref name="eos"/>.</summary>
    public static long[] Generate(CausalLmForward runner, long[] prompt, int newTokens, long eos)
    {
        var sequence = prompt.ToList();
        var step = runner.Run(prompt, Ones(prompt.Length), 1);
        for (int n = 0; n < newTokens; n++)
        {
            var vocab = runner.VocabSize;
            var last = step.Logits.AsSpan(step.Logits.Length - vocab, vocab);
            long next = 0;
            for (int v = 1; v < vocab; v++) if (last[v] > last[(int)next]) next = v;
            sequence.Add(next);
            if (next == eos) break;
            step = runner.Run([next], Ones(sequence.Count), 1, step.Present);
        }
        return [.. sequence];
    }
}
