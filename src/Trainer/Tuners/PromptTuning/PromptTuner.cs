using Peft.Onnx.Core;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Core.Tokenization;
using Peft.Onnx.Trainer.Modeling;
using Peft.Onnx.Trainer.Tuners.PromptLearning;
using static TorchSharp.torch;

namespace Peft.Onnx.Trainer.Tuners.PromptTuning;

/// <summary>
/// Prompt tuning (PEFT 0.7.1's PromptEmbedding): an Embedding(num_virtual_tokens * num_transformer_submodules,
/// token_dim) whose rows are the prompt. RANDOM init is nn.Embedding's normal(0, 1); TEXT init tokenizes
/// prompt_tuning_init_text with tokenizer_name_or_path, repeats or cuts the ids to the number of rows and copies
/// those rows of the word embeddings. A config in inference mode (a saved adapter) skips the init, as PEFT does.
/// </summary>
public sealed class PromptTuner : SoftPromptTuner
{
    public PromptTuner(PretrainedModel model, PromptTuningConfig config) : this(model, config, null) { }

    /// <param name="tokenizer">The tokenizer for TEXT init; null resolves tokenizer_name_or_path (see <see cref="InitTextTokenizer"/>).</param>
    public PromptTuner(PretrainedModel model, PromptTuningConfig config, HfTokenizer? tokenizer)
        : base(model, (PromptTuningConfig)config.WithModelDefaults(model.Config))
    {
        var filled = (PromptTuningConfig)PromptConfig;
        var table = EmbeddingTable.Random(TotalVirtualTokens, filled.TokenDim!.Value);
        Attach(table);
        if (filled.PromptTuningInit == PromptTuningConfig.Text && !filled.InferenceMode)
        {
            var rows = InitTextRows(model, filled, tokenizer ?? InitTextTokenizer.Load(filled, model.Config), TotalVirtualTokens);
            using var noGrad = no_grad();
            table.Weight.copy_(rows);
            rows.Dispose();
        }
    }

    /// <summary>
    /// The token ids of the init text (special tokens added as the tokenizer adds them), repeated
    /// ceil(total / n) times or cut, then the first <paramref name="total"/>.
    /// </summary>
    public static IReadOnlyList<int> InitTextIds(HfTokenizer tokenizer, string text, int total)
    {
        var ids = tokenizer.Encode(text);
        if (ids.Count == 0) throw new PeftOnnxException($"prompt_tuning_init_text \"{text}\" tokenizes to no tokens");
        var reps = (int)Math.Ceiling(total / (double)ids.Count);
        return Enumerable.Repeat(ids, Math.Max(reps, 1)).SelectMany(x => x).Take(total).ToList();
    }

    private static Tensor InitTextRows(PretrainedModel model, PromptTuningConfig config, HfTokenizer tokenizer, int total)
    {
        var ids = InitTextIds(tokenizer, config.PromptTuningInitText!, total);
        var vocab = model.WordEmbeddings.shape[0];
        if (ids.FirstOrDefault(i => i < 0 || i >= vocab, -1) is var bad && bad >= 0)
            throw new PeftOnnxException($"{config.SourcePath}: the init text tokenizes to id {bad}, outside the model's {vocab} embeddings (tokenizer_name_or_path '{config.TokenizerNameOrPath}' does not fit this model)");
        using var index = tensor(ids.Select(i => (long)i).ToArray(), int64);
        using var noGrad = no_grad();
        return model.WordEmbeddings.index_select(0, index).to(float32).clone();
    }
}
