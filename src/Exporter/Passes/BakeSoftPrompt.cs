using Microsoft.ML.OnnxRuntime;
using Peft.Onnx.Core;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.Onnx;
using Peft.Onnx.Exporter.Graphs;
using Peft.Onnx.Exporter.Onnx;
using Peft.Onnx.Exporter.Weights;
using Peft.Onnx.Runtime;

namespace Peft.Onnx.Exporter.Passes;

/// <summary>
/// Prompt tuning and p-tuning compiled to constants, from the saved prompt_embeddings (the prompt encoder's output).
/// <list type="bullet">
/// <item>decoder-only: PEFT's forward prepends the nv prompt embeddings to the input embeddings with an all-ones mask,
/// so the virtual tokens come first and see only each other: their keys/values in every layer do not depend on the
/// input. They are computed here, once, by running the base graph (with an inputs_embeds input) in ONNX Runtime on
/// [1, nv, hidden] at positions 0 .. nv - 1, and baked as a constant prefix (<see cref="AttentionPrefix"/>, the same
/// mechanism as <see cref="BakePrefix"/>); real tokens then sit at positions nv + t as in PEFT's forward. The same run
/// gives the logits at the last virtual token, which PEFT's loss scores against the first real label
/// (<see cref="BakedSoftPrompt"/>).</item>
/// <item>encoder-decoder: the first nv rows (prompts[:, :nv]) are prepended to the encoder input embeddings and the
/// encoder mask gets nv ones in front. PEFT 0.7.1 gives the decoder nothing, in forward and in generate, even with
/// num_transformer_submodules 2 (the second nv rows are trained but unused).</item>
/// </list>
/// </summary>
public static class BakeSoftPrompt
{
    /// <summary>The scratch model's folder is a hidden staging name of this one (never created itself).</summary>
    public const string ScratchName = "prompt-prefill";

    /// <summary>
    /// The constant prefix of a decoder-only model: the virtual tokens' present keys/values from one ORT run of the
    /// base graph on the prompt embeddings. A scratch model is written under <paramref name="scratchParent"/> and deleted.
    /// </summary>
    public static AttentionPrefix ForDecoder(PromptAdapter adapter, ModelConfig model, WeightSource weights, string scratchParent) =>
        Bake(adapter, model, weights, scratchParent).Prefix;

    /// <summary>
    /// As <see cref="ForDecoder"/>, with the logits at the last virtual token from the same run (the graph built over
    /// <paramref name="weights"/>, quantized when the export is, so they are those of the model that is served).
    /// </summary>
    public static BakedSoftPrompt Bake(PromptAdapter adapter, ModelConfig model, WeightSource weights, string scratchParent)
    {
        int nv = adapter.NumVirtualTokens;
        if (adapter.IsPrefix) throw new ArgumentException("prefix tuning is baked by BakePrefix");
        if (adapter.Rows != nv)
            throw new PeftOnnxException($"{adapter.Config.SourcePath}: {adapter.Rows} prompt rows for {nv} virtual tokens (num_transformer_submodules must be 1 for a decoder-only model)");
        int width = model.InputEmbeddingWidth;
        if (adapter.Columns != width)
            throw new PeftOnnxException($"{adapter.Config.SourcePath}: prompt embeddings of width {adapter.Columns}, but the model's word embeddings are {width} wide");

        var graph = FamilyGraphs.BuildCausal(model, weights, new CausalLmGraphOptions { TakeInputsEmbeds = true });
        Directory.CreateDirectory(scratchParent);
        // Named after this process, so that the next export removes what a killed one (kill -9) left here.
        var scratchName = Path.Combine(scratchParent, ScratchName);
        AtomicFolder.RemoveLeftovers(scratchName);
        var scratch = AtomicFolder.StagingPath(scratchName);
        Directory.CreateDirectory(scratch);
        try
        {
            var path = Path.Combine(scratch, CausalLmContract.ModelFile);
            ModelWriter.Write(graph, path, new ModelWriteOptions());
            using var forward = CausalLmForward.OpenWithEmbeddings(path);
            return Prefill(forward, adapter.Embeddings, nv, width, model.Dimensions);
        }
        catch (OnnxRuntimeException ex)
        {
            throw new PeftOnnxException($"computing the soft prompt's keys/values with ONNX Runtime failed: {ex.Message.Split('\n')[0]}", ex);
        }
        finally
        {
            try { Directory.Delete(scratch, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }

    /// <summary>
    /// Runs a graph with inputs_embeds on [1, nv, width] (mask of ones, positions 0 .. nv - 1, empty past); returns
    /// present as a prefix and the last position's logits.
    /// </summary>
    private static BakedSoftPrompt Prefill(CausalLmForward forward, float[] embeds, int nv, int width, ModelDimensions d)
    {
        int layers = d.NumLayers, heads = d.NumKeyValueHeads, headDim = d.HeadDim;
        var positions = Enumerable.Range(0, nv).Select(i => (long)i).ToArray();
        var step = forward.RunEmbeddings(embeds, width, Enumerable.Repeat(1L, nv).ToArray(), 1, past: null, positions);
        var present = step.Present;
        long[] expected = [1, heads, nv, headDim];
        long[] actual = [present.Batch, forward.NumHeads, present.Length, forward.HeadDim];
        if (forward.NumLayers != layers || !actual.SequenceEqual(expected))
            throw new PeftOnnxException($"prompt prefill: {forward.NumLayers} layers of present [{string.Join(", ", actual)}], expected {layers} of [{string.Join(", ", expected)}]");
        for (int i = 0; i < layers; i++)
        {
            Finite(present.Keys[i], CausalLmContract.PresentKey(i));
            Finite(present.Values[i], CausalLmContract.PresentValue(i));
        }
        int vocab = forward.VocabSize;
        if (step.Logits.Length != (long)nv * vocab)
            throw new PeftOnnxException($"prompt prefill: {step.Logits.Length} logits, expected [1, {nv}, {vocab}]");
        var last = step.Logits.AsSpan((nv - 1) * vocab, vocab).ToArray();
        Finite(last, CausalLmContract.VirtualTokenLogits);
        return new BakedSoftPrompt(new AttentionPrefix(nv, heads, headDim, present.Keys, present.Values), last);
    }

    private static void Finite(float[] values, string name)
    {
        foreach (var x in values)
            if (!float.IsFinite(x)) throw new PeftOnnxException($"prompt prefill: '{name}' has a non-finite value {x}");
    }

    /// <summary>The encoder soft prompt of an encoder-decoder model: the first nv rows of prompt_embeddings.</summary>
    public static Seq2SeqGraphOptions ForSeq2Seq(PromptAdapter adapter, ModelConfig model)
    {
        int nv = adapter.NumVirtualTokens;
        if (adapter.IsPrefix) throw new ArgumentException("prefix tuning is baked by BakePrefix");
        if (adapter.Rows < nv)
            throw new PeftOnnxException($"{adapter.Config.SourcePath}: {adapter.Rows} prompt rows for {nv} virtual tokens");
        if (adapter.Columns != model.Dimensions.HiddenSize)
            throw new PeftOnnxException($"{adapter.Config.SourcePath}: prompt embeddings of width {adapter.Columns}, but the model's d_model is {model.Dimensions.HiddenSize}");
        return new Seq2SeqGraphOptions { EncoderPrompt = adapter.RowsOf(0, nv), EncoderPromptLength = nv };
    }
}
