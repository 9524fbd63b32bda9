using Peft.Onnx.Core;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Core.SafeTensors;
using Peft.Onnx.Trainer.Generation;
using Peft.Onnx.Trainer.Modeling;
using static TorchSharp.torch;

namespace Peft.Onnx.Trainer.Tuners.PromptLearning;

/// <summary>
/// What PEFT 0.7.1's prompt-learning methods share (PeftModel's prompt_encoder / get_prompt / the prompt branch of
/// save and load): a trainable module whose output rows are the prompt, saved as "prompt_embeddings".
/// Loading a saved adapter puts the stored rows in place of the module's output, as PEFT's inference-mode model
/// does (for p-tuning and projected prefixes the encoder that produced them is not saved); the encoder's own
/// weights travel in the trainable checkpoint (<see cref="SaveTrainableState"/>).
/// Derived types decide where the rows go: prepended to the input embeddings or handed to the model as past.
/// </summary>
public abstract class PromptLearningTuner : ITuner
{
    private IPromptModule? _encoder;
    private EmbeddingTable? _stored;

    protected PromptLearningTuner(PretrainedModel model, PromptLearningConfig filledConfig)
    {
        Model = model;
        PromptConfig = filledConfig;
    }

    public PretrainedModel Model { get; }

    /// <summary>The config as attached: sizes filled from the base model (what PEFT saves).</summary>
    public PromptLearningConfig PromptConfig { get; }

    public AdapterConfig Config => PromptConfig;

    public int NumVirtualTokens => PromptConfig.NumVirtualTokens!.Value;

    public abstract int PrependedTokens { get; }

    /// <summary>True after <see cref="LoadAdapterStateDict"/> replaced an encoder's output by stored rows.</summary>
    public bool UsesStoredEmbeddings => _stored is not null;

    /// <summary>The module that computes the prompt now: the stored rows after a load, else the encoder.</summary>
    protected IPromptModule Active => (IPromptModule?)_stored ?? _encoder
        ?? throw new InvalidOperationException("prompt module not attached");

    /// <summary>Set by the derived constructor once its module is built.</summary>
    protected void Attach(IPromptModule encoder) => _encoder = encoder;

    /// <summary>Shape of "prompt_embeddings": [rows, width] of the module's output.</summary>
    protected abstract long[] SavedShape { get; }

    public IReadOnlyList<(string Name, Tensor Parameter)> TrainableParameters =>
        Active.Parameters.Select(p => (AdapterFormat.PromptEncoderPrefix + p.Name, p.Parameter)).ToList();

    /// <summary>PEFT's prompt_encoder(prompt_tokens) for a batch: [batch, rows, width], with grad.</summary>
    public Tensor PromptEmbeddings(long batch) => Active.Forward(batch, Model.Training);

    /// <summary>PEFT's get_prompt_embedding_to_save: the module's output, detached, on the CPU.</summary>
    public IReadOnlyDictionary<string, Tensor> AdapterStateDict()
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var rows = Active.Forward(1, false)[0].detach().cpu().clone();
        return new Dictionary<string, Tensor> { [AdapterFormat.PromptEmbeddings] = rows.MoveToOuterDisposeScope() };
    }

    public void LoadAdapterStateDict(IReadOnlyDictionary<string, Tensor> state, string path)
    {
        var unexpected = state.Keys.Where(k => k != AdapterFormat.PromptEmbeddings).Order(StringComparer.Ordinal).ToList();
        if (unexpected.Count > 0)
            throw new PeftOnnxException($"{path}: unexpected tensor(s) {string.Join(", ", unexpected.Take(5).Select(n => $"'{n}'"))} for {PromptConfig.PeftType} (a prompt adapter holds only '{AdapterFormat.PromptEmbeddings}')");
        if (!state.TryGetValue(AdapterFormat.PromptEmbeddings, out var rows))
            throw new PeftOnnxException($"{path}: missing tensor '{AdapterFormat.PromptEmbeddings}' (expected [{string.Join(", ", SavedShape)}] for {PromptConfig.PeftType})");
        if (!rows.shape.SequenceEqual(SavedShape))
            throw new PeftOnnxException($"{path}: tensor '{AdapterFormat.PromptEmbeddings}' has shape [{string.Join(", ", rows.shape)}] but adapter_config.json implies [{string.Join(", ", SavedShape)}]");
        if (_encoder is EmbeddingTable table)
        {
            using var noGrad = no_grad();
            table.Weight.copy_(rows);
            return;
        }
        _stored?.Dispose();
        _stored = new EmbeddingTable(PromptParameter.Leaf(rows.to(float32)));
    }

    /// <summary>
    /// Writes the trainable parameters (PEFT names, e.g. "prompt_encoder.default.mlp_head.0.weight") to a
    /// safetensors file, so training can resume with the encoder itself rather than its output.
    /// </summary>
    public void SaveTrainableState(string path)
    {
        var dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (dir is not null) Directory.CreateDirectory(dir);
        var tensors = TrainableParameters.Select(p =>
        {
            using var noGrad = no_grad();
            using var values = p.Parameter.detach().to(float32).cpu().contiguous();
            return TensorData.FromFloat32(p.Name, values.shape, values.data<float>().ToArray());
        }).ToList();
        SafeTensorsWriter.Write(path, tensors, AdapterFormat.WeightsMetadata);
    }

    /// <summary>
    /// Restores what <see cref="SaveTrainableState"/> wrote: the encoder's weights (the encoder computes the prompt
    /// again) or, for a tuner that had loaded stored rows, those rows.
    /// </summary>
    public void LoadTrainableState(string path)
    {
        if (!File.Exists(path)) throw new PeftOnnxException($"{path}: file not found (expected a trainable-state checkpoint)");
        using var file = SafeTensorsFile.Open(path);
        var names = file.Names.ToHashSet(StringComparer.Ordinal);
        var encoder = _encoder ?? throw new InvalidOperationException("prompt module not attached");
        var expected = encoder.Parameters.Select(p => (AdapterFormat.PromptEncoderPrefix + p.Name, p.Parameter)).ToList();
        if (names.SetEquals(expected.Select(e => e.Item1)))
        {
            foreach (var (name, parameter) in expected) CopyChecked(file, name, parameter, path);
            _stored?.Dispose();
            _stored = null;
            return;
        }
        var storedName = AdapterFormat.PromptEncoderPrefix + EmbeddingTable.WeightName;
        if (encoder is not EmbeddingTable && names.Count == 1 && names.Contains(storedName) && file[storedName].Shape.SequenceEqual(SavedShape))
        {
            using var rows = ParameterStore.ReadTensor(file, storedName);
            _stored?.Dispose();
            _stored = new EmbeddingTable(PromptParameter.Leaf(rows));
            return;
        }
        var missing = expected.Select(e => e.Item1).Where(n => !names.Contains(n)).ToList();
        var extra = names.Where(n => expected.All(e => e.Item1 != n)).Order(StringComparer.Ordinal).ToList();
        throw new PeftOnnxException($"{path}: does not match this {PromptConfig.PeftType} adapter" +
            (missing.Count > 0 ? $"; missing {string.Join(", ", missing.Take(5))}" : "") +
            (extra.Count > 0 ? $"; unexpected {string.Join(", ", extra.Take(5))}" : ""));
    }

    private static void CopyChecked(SafeTensorsFile file, string name, Tensor parameter, string path)
    {
        if (!file[name].Shape.SequenceEqual(parameter.shape))
            throw new PeftOnnxException($"{path}: tensor '{name}' has shape [{string.Join(", ", file[name].Shape)}] but the adapter expects [{string.Join(", ", parameter.shape)}]");
        using var values = ParameterStore.ReadTensor(file, name);
        using var noGrad = no_grad();
        parameter.copy_(values);
    }

    public abstract CausalLmInput PrepareCausal(CausalLmInput input);
    public abstract Seq2SeqLmInput PrepareSeq2Seq(Seq2SeqLmInput input);

    /// <summary>
    /// One decoding step of a causal LM as PEFT's prepare_inputs_for_generation builds it: without a cache the
    /// prompt goes in (prepended embeddings or prefix past); the mask always gains the virtual tokens; position
    /// ids are dropped so the model counts them from the past length.
    /// </summary>
    public abstract CausalLmInput PrepareCausalStep(CausalLmInput input);

    /// <summary>PEFT's generate for an encoder-decoder (prompts on the encoder input, or the prefix on the first decoder step).</summary>
    protected abstract Tensor GenerateSeq2Seq(Seq2SeqLm model, Tensor inputIds, Tensor? attentionMask, GreedyOptions options);

    /// <summary>The `forward` delegate for <see cref="GreedySearch"/> on a causal LM.</summary>
    public LmOutput ForwardCausalStep(CausalLmInput input) => Model switch
    {
        CausalLm lm => lm.Forward(PrepareCausalStep(input)),
        _ => throw new PeftOnnxException($"{Model.Architecture.ClassName} is not a causal LM"),
    };

    /// <summary>Greedy generation as PEFT's generate: prompt + new tokens (causal) or start + new tokens (encoder-decoder).</summary>
    public Tensor Generate(Tensor inputIds, Tensor? attentionMask, GreedyOptions options) => Model switch
    {
        CausalLm lm => GreedySearch.Generate(lm, inputIds, attentionMask, options, ForwardCausalStep),
        Seq2SeqLm s2s => GenerateSeq2Seq(s2s, inputIds, attentionMask, options),
        _ => throw new PeftOnnxException($"{Model.Architecture.ClassName}: no generation for this model kind"),
    };

    /// <summary>Logits for the caller's tokens only: drops the <see cref="PrependedTokens"/> virtual positions.</summary>
    public Tensor DropVirtualTokens(Tensor logits) =>
        PrependedTokens == 0 ? logits : logits[.., PrependedTokens.., ..];

    /// <summary>PEFT's `cat((ones(batch, num_virtual_tokens), mask), dim=1)`, in the mask's dtype.</summary>
    protected Tensor? WithVirtualMask(Tensor? mask)
    {
        if (mask is null) return null;
        var prefix = ones(mask.shape[0], NumVirtualTokens, dtype: mask.dtype, device: mask.device);
        return cat([prefix, mask], 1);
    }

    protected static long BatchSize(Tensor? ids, Tensor? embeds, string what) =>
        ids?.shape[0] ?? embeds?.shape[0] ?? throw new PeftOnnxException($"{what}: give input_ids or inputs_embeds");

    public virtual void Dispose()
    {
        _stored?.Dispose();
        _stored = null;
        _encoder?.Dispose();
        _encoder = null;
        GC.SuppressFinalize(this);
    }
}
