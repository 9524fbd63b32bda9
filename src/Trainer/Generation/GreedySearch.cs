using Peft.Onnx.Trainer.Modeling;
using TorchSharp;
using static TorchSharp.torch;

namespace Peft.Onnx.Trainer.Generation;

/// <summary>Options of a greedy search, as generate(max_new_tokens, eos_token_id, pad_token_id, do_sample=False).</summary>
public sealed record GreedyOptions(int MaxNewTokens, IReadOnlyCollection<long> EosTokenIds, long PadTokenId);

/// <summary>
/// Greedy decoding with a KV cache, token for token as transformers' greedy_search: finished rows keep
/// receiving the pad token, and the loop stops when every row has produced an eos or the budget is spent.
/// </summary>
public static class GreedySearch
{
    /// <summary>
    /// Decoder-only: returns prompt + new tokens [B, T + n]. Position ids follow prepare_inputs_for_generation
    /// (cumsum of the mask - 1, pads at 1), so left-padded batches decode as in transformers.
    /// <paramref name="forward"/> replaces the model call (PEFT models inject prompts there).
    /// </summary>
    public static Tensor Generate(CausalLm model, Tensor inputIds, Tensor? attentionMask, GreedyOptions options,
        Func<CausalLmInput, LmOutput>? forward = null)
    {
        forward ??= model.Forward;
        using var outer = NewDisposeScope();
        using var noGrad = no_grad();
        var wasTraining = model.Training;
        model.Training = false;
        try
        {
            var mask = attentionMask ?? ones_like(inputIds);
            var sequences = inputIds;
            var unfinished = ones(inputIds.shape[0], dtype: int64);
            KvCache? cache = null;
            var next = inputIds;
            for (int step = 0; step < options.MaxNewTokens; step++)
            {
                using var scope = NewDisposeScope();
                var positions = mask.cumsum(-1).Minus(1);
                positions = positions.MaskedFill(mask.Equal(0), 1);
                positions = positions[.., (int)(positions.shape[1] - next.shape[1])..];
                var output = forward(new CausalLmInput(next, mask, PastKeyValues: cache, PositionIds: positions, UseCache: true));
                var previous = cache;
                cache = output.PresentKeyValues?.MoveToOuterScope();
                if (previous != null && !ReferenceEquals(previous, cache)) previous.Dispose();
                var token = output.Logits[.., -1, ..].argmax(-1);
                token = (token * unfinished).Plus(unfinished.SubtractedFrom(1).Times(options.PadTokenId));
                unfinished = unfinished * IsNotEos(token, options.EosTokenIds);
                sequences = cat([sequences, token.unsqueeze(1)], 1);
                mask = cat([mask, ones_like(token).unsqueeze(1)], 1);
                next = token.unsqueeze(1);
                scope.MoveToOuter(sequences, mask, next, unfinished);
                if (unfinished.max().item<long>() == 0) break;
            }
            cache?.Dispose();
            return sequences.MoveToOuterDisposeScope();
        }
        finally { model.Training = wasTraining; }
    }

    /// <summary>
    /// Encoder-decoder: encodes once, then decodes from the start token; returns [B, 1 + n] (start + new tokens),
    /// as generate returns for T5.
    /// </summary>
    public static Tensor Generate(Seq2SeqLm model, Tensor inputIds, Tensor? attentionMask, GreedyOptions options,
        Func<Seq2SeqLmInput, LmOutput>? forward = null, Tensor? inputsEmbeds = null)
    {
        forward ??= model.Forward;
        using var outer = NewDisposeScope();
        using var noGrad = no_grad();
        var wasTraining = model.Training;
        model.Training = false;
        try
        {
            var mask = attentionMask ?? ones_like(inputIds);
            var batch = inputIds.shape[0];
            var encoded = model.Encode(inputsEmbeds is null ? inputIds : null, mask, inputsEmbeds);
            Tensor sequences;
            using (var start = model.DecoderStartTokenId.ToScalar()) sequences = full(batch, 1, start, dtype: int64);
            var unfinished = ones(batch, dtype: int64);
            KvCache? cache = null;
            var next = sequences;
            for (int step = 0; step < options.MaxNewTokens; step++)
            {
                using var scope = NewDisposeScope();
                var output = forward(new Seq2SeqLmInput(null, mask, DecoderInputIds: next, EncoderHiddenStates: encoded,
                    PastKeyValues: cache, UseCache: true));
                var previous = cache;
                cache = output.PresentKeyValues?.MoveToOuterScope();
                if (previous != null && !ReferenceEquals(previous, cache)) previous.Dispose();
                var token = output.Logits[.., -1, ..].argmax(-1);
                token = (token * unfinished).Plus(unfinished.SubtractedFrom(1).Times(options.PadTokenId));
                unfinished = unfinished * IsNotEos(token, options.EosTokenIds);
                sequences = cat([sequences, token.unsqueeze(1)], 1);
                next = token.unsqueeze(1);
                scope.MoveToOuter(sequences, next, unfinished);
                if (unfinished.max().item<long>() == 0) break;
            }
            cache?.Dispose();
            return sequences.MoveToOuterDisposeScope();
        }
        finally { model.Training = wasTraining; }
    }

    private static Tensor IsNotEos(Tensor token, IReadOnlyCollection<long> eos)
    {
        var notEos = ones_like(token);
        foreach (var e in eos) notEos = notEos * token.NotEqual(e).to(int64);
        return notEos;
    }
}
