using Peft.Onnx.Core.Configs;

namespace Peft.Onnx.Core.Architectures;

/// <summary>
/// What a family's checkpoint holds, computed from config.json alone (no weights): the state-dict tensors,
/// the linear modules PEFT can target, and how embeddings are tied. Trainer and Exporter both build on it,
/// and parameter counting uses it without allocating anything.
/// </summary>
public abstract class Architecture
{
    public abstract ModelConfig Config { get; }

    /// <summary>HF class name (the model class transformers builds from the config).</summary>
    public abstract string ClassName { get; }

    /// <summary>Every tensor of the state dict, tied output head excluded, in the model's module order.</summary>
    public abstract IReadOnlyList<ParameterSpec> Parameters { get; }

    /// <summary>Every linear module, in module order (as named_modules() would visit them), lm_head included.</summary>
    public abstract IReadOnlyList<LinearSpec> Linears { get; }

    /// <summary>The linear module at <paramref name="path"/>, by a dictionary built on first use (not a scan per call).</summary>
    public LinearSpec Linear(string path) =>
        (_linearsByPath ??= Linears.ToDictionary(l => l.Path, StringComparer.Ordinal)).TryGetValue(path, out var linear)
            ? linear
            : throw new PeftOnnxException($"{Config.SourcePath}: {ClassName} has no linear module '{path}'");

    /// <summary>Built once per instance; two threads that race build equal dictionaries, and either may win.</summary>
    private Dictionary<string, LinearSpec>? _linearsByPath;

    /// <summary>Name of the input embedding matrix (PEFT's word_embeddings), e.g. "transformer.word_embeddings.weight".</summary>
    public abstract string WordEmbeddings { get; }

    /// <summary>Name of the output projection weight ("lm_head.weight").</summary>
    public virtual string OutputHead => "lm_head.weight";

    /// <summary>Whether the linear weight <paramref name="weightName"/> belongs to one of the family's <see cref="Families.ModelFamily.AttentionModules"/>.</summary>
    public bool IsAttentionWeight(string weightName) => weightName.Split('.').Any(Config.Family.AttentionModules.Contains);

    /// <summary>True when the output head shares the word embeddings (and is absent from Parameters).</summary>
    public bool HeadIsTied => Config.TiesWordEmbeddings;

    /// <summary>
    /// Checkpoint names that transformers ignores when loading (e.g. GPT-2's "h.0.attn.bias" buffers),
    /// so they are not reported as unexpected.
    /// </summary>
    public virtual bool IsIgnoredOnLoad(string name) => false;

    /// <summary>Total parameters as model.num_parameters() counts them (tied tensors once).</summary>
    public long CountParameters() => Parameters.Sum(p => p.ElementCount);

    /// <summary>The architecture <paramref name="config"/> implies, built by its family.</summary>
    public static Architecture For(ModelConfig config) => config.Family.Architecture(config);
}
