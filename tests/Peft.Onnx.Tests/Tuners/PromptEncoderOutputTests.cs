using Peft.Onnx.Tests.Support;
using Peft.Onnx.Trainer.Modeling;
using Peft.Onnx.Trainer.Tuners.PrefixTuning;
using Xunit;
using static TorchSharp.torch;

namespace Peft.Onnx.Tests.Tuners;

/// <summary>
/// Starting from the reference's init.* parameters, the p-tuning encoder (MLP, LSTM) and the prefix projection
/// compute what PEFT saved (adapter prompt_embeddings) and what its get_prompt(batch_size=1) returned.
/// </summary>
public class PromptEncoderOutputTests
{
    public static TheoryData<string, string> EncoderCases => new PromptLearningCases.TheoryDataBuilderFor(
        Paths.Archs.SelectMany(a => new[] { "p_tuning_mlp", "p_tuning_lstm", "prefix_proj" }.Select(m => (a, m)))).Build();

    public static TheoryData<string, string> PrefixCases => new PromptLearningCases.TheoryDataBuilderFor(
        Paths.Archs.SelectMany(a => new[] { "prefix", "prefix_proj" }.Select(m => (a, m)))).Build();

    private const double Tol = 2e-5;

    [Theory, MemberData(nameof(EncoderCases))]
    public void Encoder_output_from_init_matches_saved_prompt_embeddings(string arch, string method)
    {
        using var model = PromptLearningCases.CreateFromInit(arch, method);
        using var expected = PromptLearningCases.Expected(arch, method);
        var state = model.Tuner.AdapterStateDict();
        try
        {
            var actual = state["prompt_embeddings"];
            Assert.Equal(expected["adapter.prompt_embeddings"].Shape, actual.shape);
            AssertClose(expected.ReadFloat32("adapter.prompt_embeddings"), PromptLearningCases.Floats(actual), $"{arch}/{method} prompt_embeddings");
            if (expected.Contains("prompt.embeds"))
                AssertClose(expected.ReadFloat32("prompt.embeds"), PromptLearningCases.Floats(actual), $"{arch}/{method} prompt.embeds");
        }
        finally { foreach (var t in state.Values) t.Dispose(); }
    }

    /// <summary>The per-layer past PEFT hands the model (incl. BLOOM's regrouped keys and T5's doubled list).</summary>
    [Theory, MemberData(nameof(PrefixCases))]
    public void Prefix_past_matches_get_prompt(string arch, string method)
    {
        using var model = PromptLearningCases.CreateFromInit(arch, method);
        using var expected = PromptLearningCases.Expected(arch, method);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var past = ((PrefixTuner)model.Tuner).PastKeyValues(1);
        var layers = model.Base.Config.Dimensions.NumDecoderLayers;
        Assert.Equal(layers, past.Self.Count);
        for (int i = 0; i < layers; i++)
        {
            var (key, value) = past.Self[i];
            if (arch == "bloom")
            {
                // PEFT's BLOOM layout: key [B * heads, head_dim, nv], value [B * heads, nv, head_dim].
                var bloomKey = key.transpose(2, 3).reshape(-1, key.shape[3], key.shape[2]);
                AssertClose(expected.ReadFloat32($"prompt.past.{i}.0"), PromptLearningCases.Floats(bloomKey), $"{arch}/{method} layer {i} key");
                AssertClose(expected.ReadFloat32($"prompt.past.{i}.1"), PromptLearningCases.Floats(value), $"{arch}/{method} layer {i} value");
                continue;
            }
            // [2 or 4, B, heads, nv, head_dim]: (self k, self v[, cross k, cross v]).
            var parts = new List<Tensor> { key, value };
            if (past.Cross.Count > 0) { parts.Add(past.Cross[i].Key); parts.Add(past.Cross[i].Value); }
            var stacked = stack(parts, 0);
            Assert.Equal(expected[$"prompt.past.{i}.0"].Shape, stacked.shape);
            AssertClose(expected.ReadFloat32($"prompt.past.{i}.0"), PromptLearningCases.Floats(stacked), $"{arch}/{method} layer {i}");
        }
    }

    /// <summary>The adapter created from init.* and used for a forward gives PEFT's loss too (training-mode path).</summary>
    [Theory, MemberData(nameof(EncoderCases))]
    public void Forward_through_encoder_matches_reference_loss(string arch, string method)
    {
        using var reference = new Reference(arch);
        using var expected = PromptLearningCases.Expected(arch, method);
        using var model = PromptLearningCases.CreateFromInit(arch, method);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var ids = tensor(reference.Inputs.ReadInt64("input_ids"), reference.Shape("input_ids"));
        var mask = tensor(reference.Inputs.ReadInt64("attention_mask"), reference.Shape("attention_mask"));
        var labels = tensor(reference.Inputs.ReadInt64("labels"), reference.Shape("labels"));
        var output = model.Base is CausalLm
            ? model.Forward(new CausalLmInput(ids, mask, Labels: labels))
            : model.Forward(new Seq2SeqLmInput(ids, mask, Labels: labels));
        Tolerance.AssertLoss(Reference.Meta(arch, method).GetProperty("loss").GetDouble(), output.Loss!.item<float>(), $"{arch}/{method} loss");
    }

    private static void AssertClose(float[] expected, float[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        double worst = 0;
        int at = -1;
        for (int i = 0; i < expected.Length; i++)
        {
            var d = Math.Abs(expected[i] - actual[i]) / Math.Max(1.0, Math.Abs(expected[i]));
            if (double.IsNaN(d) || d > worst) { worst = double.IsNaN(d) ? double.PositiveInfinity : d; at = i; }
        }
        Assert.True(worst <= Tol, $"{what}: max diff {worst:g4} at {at} (expected {(at >= 0 ? expected[at] : 0)}, got {(at >= 0 ? actual[at] : 0)})");
    }
}
