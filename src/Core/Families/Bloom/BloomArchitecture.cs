using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Configs;

namespace Peft.Onnx.Core.Families;

/// <summary>BloomForCausalLM's state dict: fused query_key_value, ALiBi (no position table), tied head.</summary>
public sealed class BloomArchitecture : Architecture
{
    public BloomArchitecture(BloomConfig config)
    {
        Config = config;
        long h = config.Width, v = config.VocabSize;
        var linears = new List<LinearSpec>();
        var ps = new List<ParameterSpec>
        {
            new("transformer.word_embeddings.weight", [v, h]),
            new("transformer.word_embeddings_layernorm.weight", [h]),
            new("transformer.word_embeddings_layernorm.bias", [h]),
        };
        for (int i = 0; i < config.NLayer; i++)
        {
            var p = $"transformer.h.{i}";
            LinearSpec queryKeyValue = new($"{p}.self_attention.query_key_value", h, 3 * h, true);
            LinearSpec dense = new($"{p}.self_attention.dense", h, h, true);
            LinearSpec up = new($"{p}.mlp.dense_h_to_4h", h, 4 * h, true);
            LinearSpec down = new($"{p}.mlp.dense_4h_to_h", 4 * h, h, true);
            linears.AddRange([queryKeyValue, dense, up, down]);

            ps.Add(new($"{p}.input_layernorm.weight", [h]));
            ps.Add(new($"{p}.input_layernorm.bias", [h]));
            ps.AddRange(LinearParameters(queryKeyValue));
            ps.AddRange(LinearParameters(dense));
            ps.Add(new($"{p}.post_attention_layernorm.weight", [h]));
            ps.Add(new($"{p}.post_attention_layernorm.bias", [h]));
            ps.AddRange(LinearParameters(up));
            ps.AddRange(LinearParameters(down));
        }
        linears.Add(new("lm_head", h, v, false));
        Linears = linears;
        ps.Add(new("transformer.ln_f.weight", [h]));
        ps.Add(new("transformer.ln_f.bias", [h]));
        if (!config.TiesWordEmbeddings) ps.Add(new("lm_head.weight", [v, h]));
        Parameters = ps;
    }

    public override ModelConfig Config { get; }
    public override string ClassName => "BloomForCausalLM";
    public override IReadOnlyList<ParameterSpec> Parameters { get; }
    public override IReadOnlyList<LinearSpec> Linears { get; }
    public override string WordEmbeddings => "transformer.word_embeddings.weight";

    /// <summary>The stored tensors of a linear module (Conv1D keeps [in, out] on disk).</summary>
    internal static IEnumerable<ParameterSpec> LinearParameters(LinearSpec l)
    {
        yield return new(l.WeightName, l.IsConv1D ? [l.InFeatures, l.OutFeatures] : [l.OutFeatures, l.InFeatures]);
        if (l.HasBias) yield return new(l.BiasName, [l.OutFeatures]);
    }
}
