using System.Text.Json.Nodes;
using Peft.Onnx.Core;
using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.Onnx;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Core.SafeTensors;
using Peft.Onnx.Exporter.Graphs;
using Peft.Onnx.Exporter.Passes;
using Peft.Onnx.Exporter.Quantization;
using Peft.Onnx.Exporter.Weights;

namespace Peft.Onnx.Exporter;

/// <summary>One adapter of a multi-adapter export: the name requests choose it by, and its PEFT folder.</summary>
public sealed record NamedAdapter(string Name, string Dir)
{
    /// <summary>
    /// The named adapters of `--adapter NAME=DIR ...`, null for a single unnamed `--adapter DIR` (today's merged export);
    /// several adapters must all be named.
    /// </summary>
    public static List<NamedAdapter>? ParseAll(IReadOnlyList<string> values)
    {
        if (values.Count == 0 || (values.Count == 1 && !values[0].Contains('='))) return null;
        var result = new List<NamedAdapter>();
        foreach (var v in values)
        {
            int eq = v.IndexOf('=');
            if (eq < 0) throw new PeftOnnxException($"export: --adapter {v}: with several adapters each must be NAME=DIR");
            var (name, dir) = (v[..eq], v[(eq + 1)..]);
            if (!Directory.Exists(dir)) throw new PeftOnnxException($"export: --adapter {v}: folder '{dir}' not found");
            result.Add(new NamedAdapter(name, dir));
        }
        return result;
    }
}

/// <summary>
/// Many adapters on one base in one folder: the base weights once, every adapter's LoRA tensors stacked per module
/// (<see cref="AdapterStack"/>), every prefix / baked prompt's keys/values stacked per layer (<see cref="PrefixStack"/>)
/// and every encoder soft prompt stacked (<see cref="EncoderPromptStack"/>, encoder-decoders), chosen per row by
/// <see cref="CausalLmContract.AdapterIndex"/> (both graphs of an encoder-decoder take it), and
/// <see cref="AdapterManifest"/> naming them. Every adapter is read and checked against the base before anything is
/// written.
/// </summary>
public static class MultiAdapterExport
{
    /// <param name="layout">
    /// How LoRA's A and B are held: the row layout (the default) stores no base slot and no rank padding; the gather layout
    /// (padded per-slot stacks) computes the same and stays for comparison.
    /// </param>
    public static ExportResult Export(string modelDir, IReadOnlyList<NamedAdapter> adapters, string outDir, ExportOptions options,
        LoraStackLayout layout = LoraStackLayout.Rows)
    {
        if (adapters.Count == 0) throw new PeftOnnxException("--adapter NAME=DIR: a multi-adapter export needs at least one named adapter");
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var a in adapters)
        {
            if (!AdapterManifest.IsValidName(a.Name))
                throw new PeftOnnxException($"--adapter {a.Name}={a.Dir}: '{a.Name}' is not a plain identifier (letters, digits, '_', '-', '.'; not starting with a digit)");
            if (!seen.Add(a.Name)) throw new PeftOnnxException($"--adapter {a.Name}={a.Dir}: two adapters are named '{a.Name}'");
        }
        if (!Directory.Exists(modelDir)) throw new PeftOnnxException($"{modelDir}: model folder not found");
        if (options.DType != ExportDType.Fp32)
            throw new PeftOnnxException(options.Quantize != null
                ? "--quantize writes int8/int4 weights with float32 activations: --dtype fp16 with --quantize is not supported on the CPU (use --dtype fp32, the default)"
                : "a multi-adapter export computes in float32 (--dtype fp16 is not supported with named adapters yet; --quantize int8|int4 is)");
        var config = ModelConfig.Load(modelDir);
        if (options.PrefixSlots && config.IsEncoderDecoder)
            throw new PeftOnnxException($"export --prefix-slots: {modelDir} is an encoder-decoder ({config.ModelType}); adapters are added at run time to decoder-only exports only");
        if (!FamilyGraphs.IsSupported(config)) throw FamilyGraphs.NotSupported(config);
        var architecture = Architecture.For(config);
        using var tensors = CheckpointTensors.Open(modelDir);
        var checkpoint = new CheckpointWeights(tensors);
        checkpoint.Validate(architecture, modelDir);

        var branches = new List<IReadOnlyList<LoraBranch>>();
        var vectors = new List<IReadOnlyList<Ia3Vector>>();
        // --quantize: the base's linear layers become MatMulNBits, the stacks stay float32 (as QLoRA adapters are served);
        // soft prompts are baked with the quantized base, as the served model runs them
        WeightSource baseWeights = options.Quantize == null ? checkpoint : new QuantizingWeights(checkpoint, options.Quantize, architecture);
        var prefixes = new List<AttentionPrefix?>();
        var encoderPrompts = new List<float[]?>();
        var entries = new List<AdapterManifestEntry>();
        foreach (var named in adapters)
        {
            if (PromptAdapter.Handles(AdapterConfig.Load(named.Dir)))
            {
                var (prefix, encoderPrompt, entry) = ReadPrompt(named, config, baseWeights, outDir);
                branches.Add([]);
                vectors.Add([]);
                prefixes.Add(prefix);
                encoderPrompts.Add(encoderPrompt);
                entries.Add(entry);
                continue;
            }
            prefixes.Add(null);
            encoderPrompts.Add(null);
            using var adapter = AdapterWeights.Open(named.Dir, architecture);
            if (adapter.Config is not (LoraConfig or Ia3Config))
                throw new PeftOnnxException($"{named.Dir}: adapter '{named.Name}' is {adapter.Config.PeftType}; a multi-adapter export stacks LoRA (DoRA), IA3, prompt tuning, p-tuning and prefix tuning adapters (export it alone with an unnamed --adapter)");
            var injected = (InjectedAdapterConfig)adapter.Config;
            var targets = injected.FindTargets(architecture);
            var replaced = adapter.Replacements(architecture, targets);
            if (replaced.Count > 0)
                throw new PeftOnnxException($"{named.Dir}: adapter '{named.Name}' replaces base tensor '{replaced.Keys.First()}' whole (modules_to_save or trained biases), which a shared base cannot hold per adapter");
            int rank = 0;
            if (adapter.Config is LoraConfig lora)
            {
                var read = LoraTarget.ReadAll(lora, architecture, adapter, checkpoint);
                branches.Add(read.Select(t => t.AsBranch(checkpoint)).ToList());
                vectors.Add([]);
                rank = read.Count == 0 ? 0 : read.Max(t => t.Rank);
            }
            else
            {
                branches.Add([]);
                vectors.Add(ReadIa3(adapter, targets, checkpoint));
            }
            adapter.RefuseUnused();
            entries.Add(new AdapterManifestEntry(named.Name, adapter.Config.PeftType, rank, adapter.Config.CountParameters(architecture).Trainable, SourceConfig(named.Dir)));
        }

        var stack = new AdapterStack(branches, vectors, layout);
        var stacked = new LoraBranches(stack);
        var d = config.Dimensions;
        var prefixStack = prefixes.Any(p => p != null) ? new PrefixStack(prefixes) { Overridable = !config.IsEncoderDecoder }
            : options.PrefixSlots ? PrefixStack.Reserved(prefixes.Count, d.NumDecoderLayers, d.NumKeyValueHeads, d.HeadDim) : null;
        prefixStack?.CheckFits(d.NumDecoderLayers, d.NumKeyValueHeads, d.HeadDim);
        var extra = new Dictionary<string, string>(StringComparer.Ordinal);
        if (options.WriteGenAiConfig) extra[GenAiConfig.FileName] = GenAiConfig.Create(config, modelDir).ToJson();
        if (config.IsEncoderDecoder)
        {
            var seq2seq = new Seq2SeqGraphOptions
            {
                Lora = stacked,
                DecoderPrefixes = prefixStack,
                EncoderPrompts = encoderPrompts.Any(p => p != null) ? new EncoderPromptStack(encoderPrompts, d.HiddenSize) : null,
            };
            extra[AdapterManifest.FileName] = new AdapterManifest(entries).ToJson();
            return OnnxExport.WriteSeq2SeqFolder(FamilyGraphs.BuildSeq2Seq(config, baseWeights, seq2seq), modelDir, outDir, options, extra);
        }
        var graph = FamilyGraphs.BuildCausal(config, baseWeights, new CausalLmGraphOptions { Lora = stacked, Prefixes = prefixStack });
        IReadOnlyList<string> prefixNames = prefixStack?.StackNames ?? [];
        var stackNames = stack.StackNames.Concat(prefixNames).ToHashSet(StringComparer.Ordinal);
        options = options with { Write = options.Write with { AlwaysExternal = stackNames } };
        return OnnxExport.WriteFolder(graph, null, modelDir, outDir, options, extra, filesFromWrite: written => new Dictionary<string, string>
        {
            [AdapterManifest.FileName] = new AdapterManifest(entries)
            {
                LoraLayout = stack.Layout,
                RowTableUsers = stack.RowTableUsers,
                Stacks = StackedAdapterTensors.Located([.. stack.StackNames, .. prefixNames], written),
                BaseWeights = StackedAdapterTensors.DoraBaseWeights(stack.StackNames, written),
            }.ToJson(),
        });
    }

    /// <summary>
    /// A prompt-learning adapter baked as its single-adapter export bakes it: prefix tuning as constant keys/values
    /// (decoder self-attention and cross part on encoder-decoders), prompt tuning / p-tuning as keys/values from running
    /// the base on its virtual tokens (decoder-only) or as the encoder prompt (encoder-decoders). Its manifest rank is its
    /// number of virtual tokens.
    /// </summary>
    private static (AttentionPrefix? Prefix, float[]? EncoderPrompt, AdapterManifestEntry Entry) ReadPrompt(NamedAdapter named, ModelConfig config, WeightSource weights, string outDir)
    {
        var adapter = PromptAdapter.Load(named.Dir, config);
        var entry = new AdapterManifestEntry(named.Name, adapter.Config.PeftType, adapter.NumVirtualTokens,
            adapter.Config.CountParameters(Architecture.For(config)).Trainable, SourceConfig(named.Dir));
        if (config.IsEncoderDecoder)
            return adapter.IsPrefix ? (BakePrefix.ForSeq2Seq(adapter, config), null, entry) : (null, BakeSoftPrompt.ForSeq2Seq(adapter, config).EncoderPrompt, entry);
        var prefix = adapter.IsPrefix
            ? BakePrefix.ForDecoder(adapter, config)
            : BakeSoftPrompt.ForDecoder(adapter, config, weights, Path.GetDirectoryName(Path.GetFullPath(outDir.TrimEnd(Path.DirectorySeparatorChar)))!);
        return (prefix, null, entry);
    }

    /// <summary>IA3's vectors, checked as the merge checks them: ia3_l [1, in] for feed-forward targets, [out, 1] otherwise.</summary>
    private static List<Ia3Vector> ReadIa3(AdapterWeights adapter, IReadOnlyList<TargetMatch> targets, WeightSource weights)
    {
        var result = new List<Ia3Vector>();
        foreach (var t in targets)
        {
            if (!weights.Contains(t.Linear.WeightName))
                throw new PeftOnnxException($"{adapter.Dir}: the adapter targets '{t.Path}', whose weight is tied to the input embeddings in this base; exporting an adapted tied head is not supported");
            long[] shape = t.IsFeedforward ? [1, t.Linear.InFeatures] : [t.Linear.OutFeatures, 1];
            var l = adapter.Read(AdapterFormat.Ia3Key(t.Path), shape,
                $"'{t.Path}' ({(t.IsFeedforward ? "feed-forward: scales its " + t.Linear.InFeatures + " inputs" : "scales its " + t.Linear.OutFeatures + " outputs")})");
            result.Add(new Ia3Vector(t.Path, l, t.IsFeedforward));
        }
        return result;
    }

    private static JsonObject? SourceConfig(string dir) =>
        JsonNode.Parse(File.ReadAllText(Path.Combine(dir, AdapterFormat.ConfigFile))) as JsonObject;
}
