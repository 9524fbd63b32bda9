using System.Text.RegularExpressions;
using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Configs;

namespace Peft.Onnx.Core.Families;

/// <summary>
/// GPT2LMHeadModel's state dict: learned position table (wpe), fused c_attn, every linear a Conv1D
/// (weight stored [in, out]), head tied to wte unless tie_word_embeddings is false.
/// </summary>
public sealed partial class Gpt2Architecture : Architecture
{
    public Gpt2Architecture(Gpt2Config config)
    {
        Config = config;
        long h = config.NEmbd, v = config.VocabSize, inner = config.InnerSize;
        var linears = new List<LinearSpec>();
        var ps = new List<ParameterSpec>
        {
            new("transformer.wte.weight", [v, h]),
            new("transformer.wpe.weight", [config.NPositions, h]),
        };
        // named_modules() order inside a block: ln_1, attn.c_attn, attn.c_proj, ln_2, mlp.c_fc, mlp.c_proj.
        for (int i = 0; i < config.NLayer; i++)
        {
            var p = $"transformer.h.{i}";
            LinearSpec cAttn = new($"{p}.attn.c_attn", h, 3 * h, true, IsConv1D: true);
            LinearSpec attnProj = new($"{p}.attn.c_proj", h, h, true, IsConv1D: true);
            LinearSpec cFc = new($"{p}.mlp.c_fc", h, inner, true, IsConv1D: true);
            LinearSpec mlpProj = new($"{p}.mlp.c_proj", inner, h, true, IsConv1D: true);
            linears.AddRange([cAttn, attnProj, cFc, mlpProj]);

            ps.Add(new($"{p}.ln_1.weight", [h]));
            ps.Add(new($"{p}.ln_1.bias", [h]));
            ps.AddRange(BloomArchitecture.LinearParameters(cAttn));
            ps.AddRange(BloomArchitecture.LinearParameters(attnProj));
            ps.Add(new($"{p}.ln_2.weight", [h]));
            ps.Add(new($"{p}.ln_2.bias", [h]));
            ps.AddRange(BloomArchitecture.LinearParameters(cFc));
            ps.AddRange(BloomArchitecture.LinearParameters(mlpProj));
        }
        ps.Add(new("transformer.ln_f.weight", [h]));
        ps.Add(new("transformer.ln_f.bias", [h]));
        // lm_head is a plain nn.Linear (not a Conv1D), without bias.
        linears.Add(new("lm_head", h, v, false));
        if (!config.TiesWordEmbeddings) ps.Add(new("lm_head.weight", [v, h]));
        Linears = linears;
        Parameters = ps;
    }

    public override ModelConfig Config { get; }
    public override string ClassName => "GPT2LMHeadModel";
    public override IReadOnlyList<ParameterSpec> Parameters { get; }
    public override IReadOnlyList<LinearSpec> Linears { get; }
    public override string WordEmbeddings => "transformer.wte.weight";

    /// <summary>
    /// The causal-mask buffers old checkpoints saved ("h.0.attn.bias", "h.0.attn.masked_bias"): transformers
    /// lists them in _keys_to_ignore_on_load_unexpected (regex search, so any prefix matches).
    /// </summary>
    public override bool IsIgnoredOnLoad(string name) => AttentionBuffer().IsMatch(name);

    [GeneratedRegex(@"h\.\d+\.attn\.(masked_)?bias")]
    private static partial Regex AttentionBuffer();
}
