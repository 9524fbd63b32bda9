using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Configs;

namespace Peft.Onnx.Core.Families;

/// <summary>
/// LlamaForCausalLM's state dict: separate q/k/v/o projections (k and v sized for num_key_value_heads),
/// SwiGLU MLP, RMSNorm weights only, RoPE (no position table, inv_freq is a non-persistent buffer),
/// untied lm_head unless tie_word_embeddings.
/// </summary>
public sealed class LlamaArchitecture : Architecture
{
    public LlamaArchitecture(LlamaConfig config)
    {
        Config = config;
        long h = config.HiddenSize, v = config.VocabSize, inter = config.IntermediateSize;
        long headDim = h / config.NumAttentionHeads;
        long qOut = config.NumAttentionHeads * headDim, kvOut = config.KeyValueHeads * headDim;
        bool bias = config.AttentionBias;

        var linears = new List<LinearSpec>();
        var ps = new List<ParameterSpec> { new("model.embed_tokens.weight", [v, h]) };
        // named_modules() order inside a layer: self_attn.{q,k,v,o}_proj, mlp.{gate,up,down}_proj, then the two norms.
        for (int i = 0; i < config.NumHiddenLayers; i++)
        {
            var p = $"model.layers.{i}";
            LinearSpec[] layer =
            [
                new($"{p}.self_attn.q_proj", h, qOut, bias),
                new($"{p}.self_attn.k_proj", h, kvOut, bias),
                new($"{p}.self_attn.v_proj", h, kvOut, bias),
                new($"{p}.self_attn.o_proj", qOut, h, bias),
                new($"{p}.mlp.gate_proj", h, inter, false),
                new($"{p}.mlp.up_proj", h, inter, false),
                new($"{p}.mlp.down_proj", inter, h, false),
            ];
            linears.AddRange(layer);
            foreach (var l in layer) ps.AddRange(BloomArchitecture.LinearParameters(l));
            ps.Add(new($"{p}.input_layernorm.weight", [h]));
            ps.Add(new($"{p}.post_attention_layernorm.weight", [h]));
        }
        ps.Add(new("model.norm.weight", [h]));
        linears.Add(new("lm_head", h, v, false));
        if (!config.TiesWordEmbeddings) ps.Add(new("lm_head.weight", [v, h]));
        Linears = linears;
        Parameters = ps;
    }

    public override ModelConfig Config { get; }
    public override string ClassName => "LlamaForCausalLM";
    public override IReadOnlyList<ParameterSpec> Parameters { get; }
    public override IReadOnlyList<LinearSpec> Linears { get; }
    public override string WordEmbeddings => "model.embed_tokens.weight";
}
