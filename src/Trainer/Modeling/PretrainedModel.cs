using Peft.Onnx.Core;
using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Configs;
using static TorchSharp.torch;

namespace Peft.Onnx.Trainer.Modeling;

/// <summary>
/// A loaded Hugging Face model: its config, its tensors by HF name and its linear modules by path.
/// Families derive from <see cref="CausalLm"/> or <see cref="Seq2SeqLm"/> and write their forward in one file.
/// </summary>
public abstract class PretrainedModel : IDisposable
{
    protected PretrainedModel(Architecture architecture, ParameterStore parameters)
    {
        Architecture = architecture;
        Parameters = parameters;
        Linears = new LinearModules(architecture.Linears, parameters);
    }

    public Architecture Architecture { get; }
    public ModelConfig Config => Architecture.Config;
    public ParameterStore Parameters { get; }
    public LinearModules Linears { get; }

    /// <summary>Dropout is active only while training, as with module.train().</summary>
    public bool Training { get; set; }

    /// <summary>PEFT's word_embeddings: [vocab, hidden].</summary>
    public Tensor WordEmbeddings => Parameters[Architecture.WordEmbeddings];

    /// <summary>Looks up token embeddings (before any family-specific scaling or projection).</summary>
    public Tensor EmbedTokens(Tensor inputIds) => WordEmbeddings.index_select(0, inputIds.reshape(-1)).reshape([.. inputIds.shape, WordEmbeddings.shape[1]]);

    /// <summary>Dropout with probability p while training; identity in eval mode.</summary>
    protected Tensor Dropout(Tensor x, double p) => Training && p > 0 ? nn.functional.dropout(x, p, true) : x;

    public virtual void Dispose()
    {
        Parameters.Dispose();
        GC.SuppressFinalize(this);
    }
}

/// <summary>A decoder-only language model.</summary>
public abstract class CausalLm(Architecture architecture, ParameterStore parameters) : PretrainedModel(architecture, parameters)
{
    public abstract LmOutput Forward(CausalLmInput input);
}

/// <summary>An encoder-decoder language model.</summary>
public abstract class Seq2SeqLm(Architecture architecture, ParameterStore parameters) : PretrainedModel(architecture, parameters)
{
    /// <summary>Runs the encoder: hidden states [B, S, d_model].</summary>
    public abstract Tensor Encode(Tensor? inputIds, Tensor? attentionMask, Tensor? inputsEmbeds = null);

    public abstract LmOutput Forward(Seq2SeqLmInput input);

    /// <summary>The token the decoder starts from.</summary>
    public abstract long DecoderStartTokenId { get; }
}
