using Peft.Onnx.Core;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.Onnx;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Core.SafeTensors;
using Peft.Onnx.Exporter.Graphs;
using Peft.Onnx.Exporter.Onnx;
using Peft.Onnx.Exporter.Passes;
using Peft.Onnx.Exporter.Quantization;
using Peft.Onnx.Exporter.Weights;

namespace Peft.Onnx.Exporter;

/// <summary>Options of an export (defaults: inline initializers under 1 KB, check with ORT).</summary>
public sealed record ExportOptions
{
    /// <summary>How model.onnx / model.onnx.data are laid out.</summary>
    public ModelWriteOptions Write { get; init; } = new();

    /// <summary>Load the result in ONNX Runtime and run a prefill + decode step before reporting success.</summary>
    public bool Verify { get; init; } = true;

    /// <summary>
    /// LoRA / IA3: merge the adapter into the base weights (default). False keeps LoRA unmerged as side branches
    /// with their own initializers (<see cref="LoraBranches"/>); IA3 has no unmerged export.
    /// </summary>
    public bool Merge { get; init; } = true;

    /// <summary>fp32 (default) or fp16 weights and compute (<see cref="ConvertFp16"/>).</summary>
    public ExportDType DType { get; init; } = ExportDType.Fp32;

    /// <summary>
    /// Quantize the linear layers' weights (the adapted float32 weights, adapters merged first unless <see cref="Merge"/>
    /// is false, when the LoRA branches stay float32) into MatMulNBits; null (default) keeps them float.
    /// </summary>
    public WeightQuantization? Quantize { get; init; }

    /// <summary>Replace a non-empty output folder (only once the new export has been written and checked).</summary>
    public bool Overwrite { get; init; }

    /// <summary>
    /// A decoder-only multi-adapter export without prompt-learning adapters still carries prefix stacks (one masked
    /// position per slot), so prefix-tuning adapters can be added at run time; they cost every decode step a little.
    /// </summary>
    public bool PrefixSlots { get; init; }

    /// <summary>Write genai_config.json (ORT GenAI's model description) beside the graphs.</summary>
    public bool WriteGenAiConfig { get; init; } = true;

    /// <summary>
    /// Called as each phase of the export begins: <see cref="ExportPhase.Write"/> (weights streamed to the data file),
    /// <see cref="ExportPhase.Check"/> (the ONNX Runtime check's session: loading, pre-packing), <see cref="ExportPhase.CheckRuns"/>
    /// (its runs), <see cref="ExportPhase.Flush"/> (what is left of the fsync the check overlapped), then
    /// <see cref="ExportPhase.Files"/> (side files and the rename, until the export returns); what runs before the first
    /// call reads the configs and builds the graph. For measuring (time and peak RSS per phase).
    /// </summary>
    public Action<ExportPhase>? OnPhase { get; init; }
}

/// <summary>Phases of an export, in order (see <see cref="ExportOptions.OnPhase"/>).</summary>
public enum ExportPhase { Write, Check, CheckRuns, Flush, Files }

/// <summary>Element type of an export's weights and compute.</summary>
public enum ExportDType { Fp32, Fp16 }

/// <summary>What an export wrote.</summary>
public sealed record ExportResult(string OutDir, ModelWriteResult Model, IReadOnlyList<string> CopiedFiles, OnnxCheckReport? Check)
{
    private readonly IReadOnlyList<ModelWriteResult>? _models;

    /// <summary>
    /// Every model written: [model.onnx] (with a baked prompt also the prefix-in-cache graph, <see cref="CausalLmContract.PrefixInCacheFile"/>),
    /// or [encoder_model.onnx, decoder_model.onnx] (then <see cref="Model"/> is the decoder).
    /// </summary>
    public IReadOnlyList<ModelWriteResult> Models { get => _models ?? [Model]; init => _models = value; }

    /// <summary>The ORT check of an encoder-decoder export (<see cref="Check"/> is the causal-LM one).</summary>
    public Seq2SeqCheckReport? Seq2SeqCheck { get; init; }
}

/// <summary>Compiles Hugging Face checkpoints into self-contained ONNX folders.</summary>
public static class OnnxExport
{
    /// <summary>Files copied unchanged from the checkpoint folder when present.</summary>
    public static readonly string[] SideFiles =
    [
        "config.json", "generation_config.json",
        "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
        "vocab.json", "merges.txt", "spiece.model", "tokenizer.model", "sentencepiece.bpe.model",
    ];

    /// <summary>
    /// Exports the base model in <paramref name="modelDir"/> (config.json + safetensors) to
    /// <paramref name="outDir"/>: model.onnx, model.onnx.data and copies of the config and tokenizer files
    /// (encoder-decoder families: encoder_model.onnx and decoder_model.onnx, each with its .onnx.data; see
    /// <see cref="Seq2SeqInterface"/>).
    /// The folder appears complete or not at all (written beside it, checked with ORT, then renamed);
    /// an existing non-empty <paramref name="outDir"/> is refused.
    /// </summary>
    public static void ExportBase(string modelDir, string outDir) => ExportBase(modelDir, outDir, new ExportOptions());

    public static ExportResult ExportBase(string modelDir, string outDir, ExportOptions options) => Export(modelDir, null, outDir, options);

    /// <summary>
    /// Compiles base model + adapter into <paramref name="outDir"/>: the adapter is read and checked against the base
    /// (<see cref="ApplyAdapter"/>) before anything is written, then the graph(s) are built over the adapted weights,
    /// optionally converted to fp16, written with genai_config.json and the tokenizer files, and checked with ORT.
    /// </summary>
    public static ExportResult Export(string modelDir, string? adapterDir, string outDir, ExportOptions options)
    {
        if (!Directory.Exists(modelDir)) throw new PeftOnnxException($"{modelDir}: model folder not found");
        var config = ModelConfig.Load(modelDir);
        if (!FamilyGraphs.IsSupported(config)) throw FamilyGraphs.NotSupported(config);
        var architecture = Core.Architectures.Architecture.For(config);
        using var tensors = CheckpointTensors.Open(modelDir);
        var checkpoint = new CheckpointWeights(tensors);
        checkpoint.Validate(architecture, modelDir);
        WeightSource weights = checkpoint;
        if (options.Quantize != null && options.DType == ExportDType.Fp16)
            throw new PeftOnnxException("--quantize writes int8/int4 weights with float32 activations: --dtype fp16 with --quantize is not supported on the CPU (use --dtype fp32, the default)");
        using var adapter = adapterDir == null ? null : AdapterWeights.Open(adapterDir, architecture);
        // prompt tuning / p-tuning / prefix tuning change the graph, not the weights: baked as constants (BakeSoftPrompt, BakePrefix)
        // baked prompts and prefixes run the model they are baked into: quantized when the export is
        if (adapter?.Config is PromptLearningConfig)
            return PromptAdapter.Export(config, Quantized(weights, architecture, options), modelDir, PromptAdapter.Load(adapter.Dir, config), outDir, options,
                options.WriteGenAiConfig ? new Dictionary<string, string> { [GenAiConfig.FileName] = GenAiConfig.Create(config, modelDir).ToJson() } : null);
        LoraBranches? unmerged = null;
        if (adapter != null) weights = ApplyAdapter(adapter, architecture, weights, options, out unmerged);
        else if (!options.Merge) throw new PeftOnnxException("--no-merge needs an adapter (it keeps the adapter's LoRA branches beside the base weights)");

        weights = Quantized(weights, architecture, options);

        var extra = new Dictionary<string, string>(StringComparer.Ordinal);
        if (options.WriteGenAiConfig) extra[GenAiConfig.FileName] = GenAiConfig.Create(config, modelDir).ToJson();
        if (config.IsEncoderDecoder)
        {
            var graphs = FamilyGraphs.BuildSeq2Seq(config, weights, new Seq2SeqGraphOptions { Lora = unmerged });
            if (options.DType == ExportDType.Fp16) graphs = new Seq2SeqGraphs(ConvertFp16.Convert(graphs.Encoder, keepFloat32: []), ConvertFp16.Convert(graphs.Decoder, keepFloat32: [Seq2SeqContract.Logits]));
            return WriteSeq2SeqFolder(graphs, modelDir, outDir, options, extra);
        }
        var graph = FamilyGraphs.BuildCausal(config, weights, new CausalLmGraphOptions { Lora = unmerged });
        if (options.DType == ExportDType.Fp16) graph = ConvertFp16.Convert(graph, keepFloat32: [CausalLmContract.Logits]);
        return WriteFolder(graph, modelDir, outDir, options, extra);
    }

    /// <summary>
    /// The one place an adapter meets the base weights, by adapter type: each method's pass wraps the weight source
    /// after checking every adapter tensor against the base (a misfit throws here, before any file is written).
    /// LoRA and IA3 also replace modules_to_save copies (and LoRA's trained biases) whole. A LoRA adapter left unmerged
    /// (<see cref="ExportOptions.Merge"/> false) is checked the same way and comes back as the graph option
    /// <paramref name="unmerged"/>.
    /// </summary>
    public static WeightSource ApplyAdapter(AdapterWeights adapter, Core.Architectures.Architecture architecture, WeightSource weights, ExportOptions options,
        out LoraBranches? unmerged)
    {
        WeightSource result;
        unmerged = null;
        switch (adapter.Config)
        {
            case LoraConfig lora:
            {
                var targets = lora.FindTargets(architecture);
                var replaced = new ReplaceSavedModules(weights, adapter.Replacements(architecture, targets));
                if (options.Merge)
                {
                    var merge = MergeLora.Apply(lora, architecture, adapter, replaced);
                    if (merge.AddedBiases.Count > 0) unmerged = new LoraBranches(merge.AddedBiases);
                    result = merge;
                }
                else
                {
                    unmerged = new LoraBranches(LoraTarget.ReadAll(lora, architecture, adapter, replaced).Select(t => t.AsBranch(replaced)));
                    result = replaced;
                }
                break;
            }
            case Ia3Config ia3:
            {
                if (!options.Merge) throw new PeftOnnxException($"{adapter.Dir}: --no-merge applies to LoRA adapters only (an IA3 vector is always merged into its module's weights)");
                var replaced = new ReplaceSavedModules(weights, adapter.Replacements(architecture, ia3.FindTargets(architecture)));
                result = MergeIa3.Apply(ia3, architecture, adapter, replaced);
                break;
            }
            case InjectedAdapterConfig injected when MergedOnly(injected) is { } merge:
            {
                RefuseUnmerged(adapter, options);
                var replaced = new ReplaceSavedModules(weights, adapter.Replacements(architecture, injected.FindTargets(architecture)));
                result = merge(architecture, adapter, replaced);
                break;
            }
            case PromptLearningConfig:
                // prompt tuning / p-tuning / prefix tuning are baked into the graphs (BakeSoftPrompt, BakePrefix): not here yet
                throw new PeftOnnxException($"{adapter.Dir}: ONNX export of {adapter.Config.PeftType} adapters is not supported yet (LoRA and IA3 are)");
            default:
                throw new PeftOnnxException($"{adapter.Dir}: ONNX export of {adapter.Config.PeftType} adapters is not supported");
        }
        adapter.RefuseUnused();
        return result;
    }

    /// <summary>
    /// The merge pass of each method whose export is always merged (its delta has no unmerged graph form); null for
    /// the methods handled above.
    /// </summary>
    private static Func<Core.Architectures.Architecture, AdapterWeights, WeightSource, WeightSource>? MergedOnly(InjectedAdapterConfig config) => config switch
    {
        LoHaConfig c => (arch, adapter, weights) => MergeLoHa.Apply(c, arch, adapter, weights),
        LoKrConfig c => (arch, adapter, weights) => MergeLoKr.Apply(c, arch, adapter, weights),
        VeraConfig c => (arch, adapter, weights) => MergeVera.Apply(c, arch, adapter, weights),
        AdaLoraConfig c => (arch, adapter, weights) => MergeAdaLora.Apply(c, arch, adapter, weights),
        OftConfig c => (arch, adapter, weights) => MergeOft.Apply(c, arch, adapter, weights),
        BoftConfig c => (arch, adapter, weights) => MergeBoft.Apply(c, arch, adapter, weights),
        HraConfig c => (arch, adapter, weights) => MergeHra.Apply(c, arch, adapter, weights),
        FourierFtConfig c => (arch, adapter, weights) => MergeFourierFt.Apply(c, arch, adapter, weights),
        _ => null,
    };

    /// <summary>Methods whose export is always merged refuse --no-merge, naming the method.</summary>
    private static void RefuseUnmerged(AdapterWeights adapter, ExportOptions options)
    {
        if (!options.Merge)
            throw new PeftOnnxException($"{adapter.Dir}: --no-merge applies to LoRA adapters only (a {adapter.Config.PeftType} delta is always merged into its module's weights)");
    }
    /// <summary>The weights as the graphs should read them: wrapped with the quantization decision when the export quantizes.</summary>
    private static WeightSource Quantized(WeightSource weights, Core.Architectures.Architecture architecture, ExportOptions options) =>
        options.Quantize == null ? weights : new QuantizingWeights(weights, options.Quantize, architecture);

    /// <summary>The adapter merged into the base weights (<see cref="ExportOptions.Merge"/> must be true).</summary>
    public static WeightSource ApplyAdapter(AdapterWeights adapter, Core.Architectures.Architecture architecture, WeightSource weights, ExportOptions options)
    {
        if (!options.Merge) throw new ArgumentException("an unmerged LoRA export keeps graph branches: use the overload that returns them");
        var merged = ApplyAdapter(adapter, architecture, weights, options, out var terms);
        if (terms != null)
            throw new PeftOnnxException($"{adapter.Dir}: lora_bias on a module without a bias adds a bias term to the graph, which merged weights alone cannot hold (export the whole model instead)");
        return merged;
    }

    /// <summary>Writes model + side files into a temporary folder beside <paramref name="outDir"/>, verifies, renames.</summary>
    public static ExportResult WriteFolder(GraphBuilder graph, string sourceDir, string outDir, ExportOptions options) =>
        WriteFolder(graph, sourceDir, outDir, options, null);

    /// <summary>As above, with extra text files (name -> content) written into the folder.</summary>
    public static ExportResult WriteFolder(GraphBuilder graph, string sourceDir, string outDir, ExportOptions options, IReadOnlyDictionary<string, string>? extraFiles) =>
        WriteFolder(graph, null, sourceDir, outDir, options, extraFiles);

    /// <summary>
    /// As above; <paramref name="prefixInCache"/>, when given, is written beside model.onnx as
    /// <see cref="CausalLmContract.PrefixInCacheFile"/>, reading its weights from model.onnx.data (one copy on disk),
    /// and checked too.
    /// </summary>
    /// <param name="writeSideFiles">Writes further files into the (staging) folder it is handed.</param>
    /// <param name="filesFromWrite">
    /// Text files (name -> content) computed from where model.onnx's initializers landed, written beside it before the check
    /// (a multi-adapter export's adapters.json records its stacks' offsets).
    /// </param>
    public static ExportResult WriteFolder(GraphBuilder graph, GraphBuilder? prefixInCache, string sourceDir, string outDir, ExportOptions options,
        IReadOnlyDictionary<string, string>? extraFiles, Action<string>? writeSideFiles = null,
        Func<ModelWriteResult, IReadOnlyDictionary<string, string>>? filesFromWrite = null) =>
        WriteAtomically(sourceDir, outDir, options, extraFiles, temp =>
        {
            options.OnPhase?.Invoke(ExportPhase.Write);
            var write = options.Write with { DataFileName = CausalLmContract.DataFile, FlushToDisk = false };
            var model = ModelWriter.Write(graph, Path.Combine(temp, CausalLmContract.ModelFile), write);
            foreach (var (name, text) in filesFromWrite?.Invoke(model) ?? new Dictionary<string, string>())
                File.WriteAllText(Path.Combine(temp, name), text);
            List<ModelWriteResult> models = [model];
            if (prefixInCache != null)
                models.Add(ModelWriter.Write(prefixInCache, Path.Combine(temp, CausalLmContract.PrefixInCacheFile), write with { SharedData = model.External }));
            writeSideFiles?.Invoke(temp);
            options.OnPhase?.Invoke(ExportPhase.Check);
            OnnxCheckReport? check = null;
            CheckWhileFlushing(options, models, () =>
            {
                foreach (var m in models)
                {
                    var report = OnnxCheck.CausalLm(m.ModelPath, CheckWeightsOf(options), ReferenceEquals(m, model) ? RunsBegin(options) : null);
                    // fp16 exports are checked the same way; the result reports float32 checks only, as callers expect
                    if (options.DType != ExportDType.Fp16) check ??= report;
                }
            });
            return new ExportResult(temp, model, [], check) { Models = models };
        });

    /// <summary>
    /// Writes encoder_model.onnx (+ .onnx.data), decoder_model.onnx (+ .onnx.data) and the side files into a
    /// temporary folder beside <paramref name="outDir"/>, checks both with ORT (<see cref="OnnxCheck.Seq2Seq(string, string)"/>), renames.
    /// </summary>
    public static ExportResult WriteSeq2SeqFolder(Seq2SeqGraphs graphs, string sourceDir, string outDir, ExportOptions options) =>
        WriteSeq2SeqFolder(graphs, sourceDir, outDir, options, null);

    /// <summary>As above, with extra text files (name -> content) written into the folder.</summary>
    public static ExportResult WriteSeq2SeqFolder(Seq2SeqGraphs graphs, string sourceDir, string outDir, ExportOptions options, IReadOnlyDictionary<string, string>? extraFiles) =>
        WriteAtomically(sourceDir, outDir, options, extraFiles, temp =>
        {
            options.OnPhase?.Invoke(ExportPhase.Write);
            var encoderPath = Path.Combine(temp, Seq2SeqContract.EncoderFile);
            var decoderPath = Path.Combine(temp, Seq2SeqContract.DecoderFile);
            var encoder = ModelWriter.Write(graphs.Encoder, encoderPath, options.Write with { DataFileName = Seq2SeqContract.EncoderDataFile, FlushToDisk = false });
            var decoder = ModelWriter.Write(graphs.Decoder, decoderPath, options.Write with { DataFileName = Seq2SeqContract.DecoderDataFile, FlushToDisk = false });
            options.OnPhase?.Invoke(ExportPhase.Check);
            Seq2SeqCheckReport? check = null;
            CheckWhileFlushing(options, [encoder, decoder], () =>
            {
                var report = OnnxCheck.Seq2Seq(encoderPath, decoderPath, CheckWeightsOf(options), RunsBegin(options));
                // fp16 exports are checked the same way; the result reports float32 checks only, as callers expect
                if (options.DType != ExportDType.Fp16) check = report;
            });
            return new ExportResult(temp, decoder, [], null) { Models = [encoder, decoder], Seq2SeqCheck = check };
        });

    /// <summary>
    /// Quantized when every large weight product of the export is a MatMulNBits: a quantized export but one whose head
    /// stays float32 (the largest weight of a small model, which pre-packing would copy whole).
    /// </summary>
    private static CheckWeights CheckWeightsOf(ExportOptions options) =>
        options.Quantize is { KeepHeadFloat: false } ? CheckWeights.Quantized : CheckWeights.Float;

    /// <summary>Tells <see cref="ExportOptions.OnPhase"/> that the check's session is open and its runs begin.</summary>
    private static Action? RunsBegin(ExportOptions options) => options.OnPhase is { } onPhase ? () => onPhase(ExportPhase.CheckRuns) : null;

    /// <summary>
    /// Runs the ORT check (when <see cref="ExportOptions.Verify"/>) while the written files are flushed to disk: the check reads
    /// the page cache, the flush waits for the disk, so neither waits for the other.
    /// </summary>
    private static void CheckWhileFlushing(ExportOptions options, IReadOnlyList<ModelWriteResult> models, Action check)
    {
        var flush = Task.Run(() => { foreach (var m in models) ModelWriter.FlushToDisk(m); });
        try
        {
            if (options.Verify) check();
            options.OnPhase?.Invoke(ExportPhase.Flush);
        }
        catch
        {
            // the folder is about to be removed: let the flush end first; its own failure adds nothing to the check's
            try { flush.Wait(); } catch (AggregateException) { }
            throw;
        }
        flush.GetAwaiter().GetResult();
    }

    /// <summary>
    /// The folder appears complete or not at all: <paramref name="write"/> fills a temporary folder beside
    /// <paramref name="outDir"/> (and verifies what it wrote), the side files are copied, then the folder is renamed.
    /// </summary>
    private static ExportResult WriteAtomically(string sourceDir, string outDir, ExportOptions options, IReadOnlyDictionary<string, string>? extraFiles, Func<string, ExportResult> write)
    {
        bool overwrite = options.Overwrite;
        var target = Path.GetFullPath(outDir.TrimEnd(Path.DirectorySeparatorChar));
        if (File.Exists(target)) throw new PeftOnnxException($"{outDir}: exists and is a file (expected a new or empty folder)");
        AtomicFolder.RemoveLeftovers(target); // what an export killed earlier (kill -9) left beside the target
        if (!overwrite && Directory.Exists(target) && Directory.EnumerateFileSystemEntries(target).Any())
            throw new PeftOnnxException($"{outDir}: folder is not empty (refusing to overwrite; choose a new folder, or --force)");
        var parent = Path.GetDirectoryName(target)!;
        Directory.CreateDirectory(parent);
        var temp = AtomicFolder.StagingPath(target);
        Directory.CreateDirectory(temp);
        try
        {
            var written = write(temp);
            options.OnPhase?.Invoke(ExportPhase.Files);
            var copied = new List<string>();
            foreach (var f in SideFiles)
            {
                var src = Path.Combine(sourceDir, f);
                if (!File.Exists(src)) continue;
                File.Copy(src, Path.Combine(temp, f));
                copied.Add(f);
            }
            foreach (var (name, text) in extraFiles ?? new Dictionary<string, string>())
                File.WriteAllText(Path.Combine(temp, name), text);

            if (!overwrite && Directory.Exists(target) && Directory.EnumerateFileSystemEntries(target).Any())
                throw new PeftOnnxException($"{outDir}: folder became non-empty during the export (refusing to overwrite)");
            AtomicFolder.Publish(temp, target); // the old folder is renamed aside, never half-deleted under its name
            ModelWriteResult Moved(ModelWriteResult m) => m with
            {
                ModelPath = Path.Combine(target, Path.GetFileName(m.ModelPath)),
                DataPath = m.DataPath == null ? null : Path.Combine(target, Path.GetFileName(m.DataPath)),
            };
            return written with { OutDir = target, Model = Moved(written.Model), Models = written.Models.Select(Moved).ToList(), CopiedFiles = copied };
        }
        catch
        {
            try { Directory.Delete(temp, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            throw;
        }
    }
}
