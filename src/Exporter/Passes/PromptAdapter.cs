using Peft.Onnx.Core;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.Onnx;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Core.SafeTensors;
using Peft.Onnx.Exporter.Graphs;
using Peft.Onnx.Exporter.Onnx;
using Peft.Onnx.Exporter.Weights;

namespace Peft.Onnx.Exporter.Passes;

/// <summary>
/// A PEFT prompt-learning adapter (PROMPT_TUNING, P_TUNING, PREFIX_TUNING) as save_pretrained wrote it: the config,
/// its sizes filled for the base model, and the one tensor that matters for inference, "prompt_embeddings":
/// <list type="bullet">
/// <item>prompt tuning / p-tuning: [num_virtual_tokens * num_transformer_submodules, token_dim], the prompt encoder's
/// output (the p-tuning MLP/LSTM is only needed to train);</item>
/// <item>prefix tuning: [num_virtual_tokens, num_layers * 2 * token_dim], the projection already applied.</item>
/// </list>
/// </summary>
public sealed class PromptAdapter
{
    public PromptAdapter(PromptLearningConfig config, float[] embeddings, int rows, int columns)
    {
        if ((long)rows * columns != embeddings.LongLength) throw new ArgumentException($"{embeddings.LongLength} values are not [{rows}, {columns}]");
        Config = config;
        Embeddings = embeddings;
        Rows = rows;
        Columns = columns;
    }

    /// <summary>The config with every size filled (<see cref="PromptLearningConfig.WithModelDefaults"/>).</summary>
    public PromptLearningConfig Config { get; }

    /// <summary>prompt_embeddings, row-major [Rows, Columns].</summary>
    public float[] Embeddings { get; }
    public int Rows { get; }
    public int Columns { get; }

    public int NumVirtualTokens => Config.NumVirtualTokens!.Value;
    public bool IsPrefix => Config is PrefixTuningConfig;

    /// <summary>True for the adapter types this pass compiles.</summary>
    public static bool Handles(AdapterConfig config) => config is PromptTuningConfig or PromptEncoderConfig or PrefixTuningConfig;

    /// <summary>
    /// Reads adapter_config.json and adapter_model.safetensors from <paramref name="adapterDir"/>, after checking the
    /// adapter against the base (<see cref="AdapterFit"/>, the trainer's check too).
    /// </summary>
    public static PromptAdapter Load(string adapterDir, ModelConfig model)
    {
        var loaded = AdapterConfig.Load(adapterDir);
        if (loaded is not PromptLearningConfig || !Handles(loaded))
            throw new PeftOnnxException($"{loaded.SourcePath}: peft_type '{loaded.PeftType}' is not a prompt-learning method (expected PROMPT_TUNING, P_TUNING or PREFIX_TUNING)");
        var path = AdapterFormat.WeightsPath(adapterDir);
        using var file = SafeTensorsFile.Open(path);
        var config = (PromptLearningConfig)AdapterFit.Check(loaded, Core.Architectures.Architecture.For(model), file, path);
        var shape = file[AdapterFormat.PromptEmbeddings].Shape;
        return new PromptAdapter(config, file.ReadFloat32(AdapterFormat.PromptEmbeddings), (int)shape[0], (int)shape[1]);
    }

    /// <summary>Rows [from, from + count) of prompt_embeddings.</summary>
    public float[] RowsOf(int from, int count) => Embeddings.AsSpan(from * Columns, count * Columns).ToArray();

    // ------------------------------------------------------------------ export

    /// <summary>
    /// Exports base model + prompt-learning adapter as a plain ONNX folder: the base model's interface (see
    /// <see cref="CausalLmInterface"/> / <see cref="Seq2SeqInterface"/>), the adapter baked in as constants.
    /// <list type="bullet">
    /// <item>decoder-only: a constant attention prefix (<see cref="AttentionPrefix"/>): past / present and
    /// attention_mask cover only the real tokens, logits are [batch, seq, vocab] for the real tokens, real tokens sit
    /// at positions num_virtual_tokens + t as in PEFT's forward, and graphs of families that take position_ids compute
    /// them instead; a soft prompt also writes the last virtual token's logits (<see cref="CausalLmContract.VirtualTokenLogitsFile"/>);</item>
    /// <item>encoder-decoder prefix: decoder self-attention prefix, encoder unchanged (cross part as transformers uses it);</item>
    /// <item>encoder-decoder soft prompt: constant embeddings before the encoder input; encoder outputs are
    /// num_virtual_tokens longer than its input (see <see cref="Seq2SeqGraphOptions.EncoderPrompt"/>).</item>
    /// </list>
    /// </summary>
    public static ExportResult Export(string modelDir, string adapterDir, string outDir, ExportOptions options)
    {
        if (!Directory.Exists(modelDir)) throw new PeftOnnxException($"{modelDir}: model folder not found");
        var config = ModelConfig.Load(modelDir);
        if (!FamilyGraphs.IsSupported(config)) throw FamilyGraphs.NotSupported(config);
        var adapter = Load(adapterDir, config);
        using var tensors = CheckpointTensors.Open(modelDir);
        var weights = new CheckpointWeights(tensors);
        weights.Validate(Core.Architectures.Architecture.For(config), modelDir);
        return Export(config, weights, modelDir, adapter, outDir, options);
    }

    /// <summary>
    /// Exports with an already opened base checkpoint (see <see cref="Export(string,string,string,ExportOptions)"/>);
    /// <paramref name="extraFiles"/> (name -> text, e.g. genai_config.json) are written into the folder.
    /// </summary>
    public static ExportResult Export(ModelConfig config, WeightSource weights, string modelDir, PromptAdapter adapter, string outDir, ExportOptions options,
        IReadOnlyDictionary<string, string>? extraFiles = null)
    {
        bool fp16 = options.DType == ExportDType.Fp16;
        options = options with { Write = options.Write with { Metadata = Metadata(options.Write.Metadata, adapter) } };
        if (config.IsEncoderDecoder)
        {
            var seq2seq = adapter.IsPrefix
                ? new Seq2SeqGraphOptions { DecoderPrefix = BakePrefix.ForSeq2Seq(adapter, config) }
                : BakeSoftPrompt.ForSeq2Seq(adapter, config);
            var graphs = FamilyGraphs.BuildSeq2Seq(config, weights, seq2seq);
            if (fp16) graphs = new Seq2SeqGraphs(ConvertFp16.Convert(graphs.Encoder, keepFloat32: []), ConvertFp16.Convert(graphs.Decoder, keepFloat32: [Seq2SeqContract.Logits]));
            // the check takes the cross length from the encoder's outputs, so a baked encoder prompt is checked like any export
            return OnnxExport.WriteSeq2SeqFolder(graphs, modelDir, outDir, options, extraFiles);
        }

        // prefix tuning passes the labels as they are; a soft prompt's labels get nv -100s in front, so its last virtual
        // token scores the first real label: those constant logits are written beside the graphs for the loss
        var soft = adapter.IsPrefix ? null
            : BakeSoftPrompt.Bake(adapter, config, weights, Path.GetDirectoryName(Path.GetFullPath(outDir.TrimEnd(Path.DirectorySeparatorChar)))!);
        var prefix = soft?.Prefix ?? BakePrefix.ForDecoder(adapter, config);
        // model.onnx keeps the base cache contract (ORT GenAI's); the Runtime runs the prefix-in-cache graph beside it
        var graph = FamilyGraphs.BuildCausal(config, weights, new CausalLmGraphOptions { Prefix = prefix });
        var inCache = FamilyGraphs.BuildCausal(config, weights, new CausalLmGraphOptions { Prefix = prefix, PrefixInCache = true });
        if (fp16)
        {
            graph = ConvertFp16.Convert(graph, keepFloat32: [CausalLmContract.Logits]);
            inCache = ConvertFp16.Convert(inCache, keepFloat32: [CausalLmContract.Logits]);
        }
        if (extraFiles != null && extraFiles.TryGetValue(GenAiConfig.FileName, out var genai))
            extraFiles = new Dictionary<string, string>(extraFiles) { [GenAiConfig.FileName] = GenAiConfig.MatchInputs(genai, graph.Inputs.Select(i => i.Name)) };
        return OnnxExport.WriteFolder(graph, inCache, modelDir, outDir, options, extraFiles,
            soft == null ? null : folder => WriteVirtualTokenLogits(folder, soft.LastVirtualTokenLogits));
    }

    /// <summary>Writes <see cref="CausalLmContract.VirtualTokenLogitsFile"/> (float32 [vocab]) into <paramref name="folder"/>.</summary>
    public static void WriteVirtualTokenLogits(string folder, float[] logits) =>
        SafeTensorsWriter.Write(Path.Combine(folder, CausalLmContract.VirtualTokenLogitsFile),
            [TensorData.FromFloat32(CausalLmContract.VirtualTokenLogits, [logits.Length], logits)]);

    /// <summary>metadata_props naming the baked adapter (the graph interface does not show it).</summary>
    private static Dictionary<string, string> Metadata(IReadOnlyDictionary<string, string>? existing, PromptAdapter adapter)
    {
        var result = existing?.ToDictionary(kv => kv.Key, kv => kv.Value) ?? [];
        result[OnnxMetadataKeys.PeftType] = adapter.Config.PeftType;
        result[OnnxMetadataKeys.NumVirtualTokens] = adapter.NumVirtualTokens.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return result;
    }
}
