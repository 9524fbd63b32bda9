using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Configs;

namespace Peft.Onnx.Core.Families;

/// <summary>
/// OPTForCausalLM's state dict: learned positions (offset 2), optional project_in/project_out when the token
/// embeddings are narrower than the model (opt-350m), optional final decoder LayerNorm, tied head.
/// Order follows OPTDecoder.__init__: embed_tokens, embed_positions, project_out, project_in, final_layer_norm, layers.
/// </summary>
public sealed class OptArchitecture : Architecture
{
    public OptArchitecture(OptConfig config)
    {
        Config = config;
        long h = config.HiddenSize, e = config.EmbedDim, v = config.VocabSize, f = config.FfnDim;
        bool projected = e != h;
        bool bias = config.EnableBias;

        var linears = new List<LinearSpec>();
        if (projected)
        {
            linears.Add(new("model.decoder.project_out", h, e, false));
            linears.Add(new("model.decoder.project_in", e, h, false));
        }
        for (int i = 0; i < config.NumHiddenLayers; i++)
        {
            var p = $"model.decoder.layers.{i}";
            // OPTAttention registers k, v, q, out in this order.
            linears.Add(new($"{p}.self_attn.k_proj", h, h, bias));
            linears.Add(new($"{p}.self_attn.v_proj", h, h, bias));
            linears.Add(new($"{p}.self_attn.q_proj", h, h, bias));
            linears.Add(new($"{p}.self_attn.out_proj", h, h, bias));
            linears.Add(new($"{p}.fc1", h, f, bias));
            linears.Add(new($"{p}.fc2", f, h, bias));
        }
        linears.Add(new("lm_head", e, v, false));
        Linears = linears;
        var byPath = linears.ToDictionary(l => l.Path);

        var ps = new List<ParameterSpec>
        {
            new("model.decoder.embed_tokens.weight", [v, e]),
            new("model.decoder.embed_positions.weight", [config.MaxPositionEmbeddings + PositionOffset, h]),
        };
        if (projected)
        {
            ps.AddRange(BloomArchitecture.LinearParameters(byPath["model.decoder.project_out"]));
            ps.AddRange(BloomArchitecture.LinearParameters(byPath["model.decoder.project_in"]));
        }
        if (HasFinalLayerNorm) ps.AddRange(LayerNorm("model.decoder.final_layer_norm", h));
        for (int i = 0; i < config.NumHiddenLayers; i++)
        {
            var p = $"model.decoder.layers.{i}";
            foreach (var name in new[] { "k_proj", "v_proj", "q_proj", "out_proj" })
                ps.AddRange(BloomArchitecture.LinearParameters(byPath[$"{p}.self_attn.{name}"]));
            ps.AddRange(LayerNorm($"{p}.self_attn_layer_norm", h));
            ps.AddRange(BloomArchitecture.LinearParameters(byPath[$"{p}.fc1"]));
            ps.AddRange(BloomArchitecture.LinearParameters(byPath[$"{p}.fc2"]));
            ps.AddRange(LayerNorm($"{p}.final_layer_norm", h));
        }
        if (!config.TiesWordEmbeddings) ps.Add(new("lm_head.weight", [v, e]));
        Parameters = ps;
    }

    /// <summary>OPTLearnedPositionalEmbedding shifts every position by 2 (a fairseq padding_idx leftover).</summary>
    public const int PositionOffset = 2;

    /// <summary>nn.LayerNorm's default epsilon, which every OPT LayerNorm uses (config.json has no key for it).</summary>
    public const double LayerNormEpsilon = 1e-5;

    public OptConfig Opt => (OptConfig)Config;

    /// <summary>project_in/project_out exist when word_embed_proj_dim differs from hidden_size.</summary>
    public bool HasProjections => Opt.EmbedDim != Opt.HiddenSize;

    /// <summary>The decoder's final LayerNorm exists only for pre-LN models not converted with _remove_final_layer_norm.</summary>
    public bool HasFinalLayerNorm => Opt.DoLayerNormBefore && !Opt.RemoveFinalLayerNorm;

    public override ModelConfig Config { get; }
    public override string ClassName => "OPTForCausalLM";
    public override IReadOnlyList<ParameterSpec> Parameters { get; }
    public override IReadOnlyList<LinearSpec> Linears { get; }
    public override string WordEmbeddings => "model.decoder.embed_tokens.weight";

    /// <summary>A LayerNorm's tensors; none when layer_norm_elementwise_affine is false.</summary>
    private IEnumerable<ParameterSpec> LayerNorm(string path, long width)
    {
        if (!Opt.LayerNormElementwiseAffine) yield break;
        yield return new($"{path}.weight", [width]);
        yield return new($"{path}.bias", [width]);
    }
}
