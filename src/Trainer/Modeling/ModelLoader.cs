using Peft.Onnx.Core;
using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.Families;
using Peft.Onnx.Core.SafeTensors;
using Peft.Onnx.Trainer.Models;
using static TorchSharp.torch;

namespace Peft.Onnx.Trainer.Modeling;

/// <summary>What loading found besides the expected tensors (transformers logs these as warnings).</summary>
public sealed record LoadReport(IReadOnlyList<string> Unexpected);

/// <summary>
/// Loads a Hugging Face checkpoint folder (config.json + model.safetensors or shards) into the family's
/// model: every expected tensor present with its expected shape, converted to float32, Conv1D weights
/// transposed to [out, in], the output head tied to the embeddings where the config says so.
/// </summary>
public static class ModelLoader
{
    public static PretrainedModel Load(string dir) => Load(dir, out _);

    public static PretrainedModel Load(string dir, out LoadReport report)
    {
        if (!Directory.Exists(dir)) throw new PeftOnnxException($"{dir}: model folder not found");
        var config = ModelConfig.Load(dir);
        var architecture = Architecture.For(config);
        using var source = CheckpointTensors.Open(dir);
        var store = LoadParameters(architecture, source, out report);
        try { return Create(architecture, store); }
        catch { store.Dispose(); throw; }
    }

    public static ParameterStore LoadParameters(Architecture architecture, ITensorSource source, out LoadReport report)
    {
        var where = source is CheckpointTensors ct && ct.Files.Count == 1 ? ct.Files[0].Path : "checkpoint";
        var stored = architecture.Parameters.ToDictionary(p => p.Name, p => CheckpointNames.Find(p.Name, source));
        var missing = stored.Where(kv => kv.Value is null).Select(kv => kv.Key).ToList();
        if (missing.Count > 0)
            throw new PeftOnnxException($"{where}: missing tensors for {architecture.ClassName}: {string.Join(", ", missing.Take(8))}{(missing.Count > 8 ? $" (and {missing.Count - 8} more)" : "")}");
        foreach (var spec in architecture.Parameters)
        {
            var actual = source[stored[spec.Name]!].Shape;
            if (!actual.SequenceEqual(spec.Shape))
                throw new PeftOnnxException($"{where}: tensor '{stored[spec.Name]}' has shape [{string.Join(", ", actual)}] but config.json implies [{string.Join(", ", spec.Shape)}]");
        }
        var used = stored.Values.ToHashSet();
        var unexpected = source.Names.Where(n => !used.Contains(n) && !architecture.IsIgnoredOnLoad(n)
            && !(n == architecture.OutputHead && architecture.HeadIsTied)).Order(StringComparer.Ordinal).ToList();
        report = new LoadReport(unexpected);

        var store = new ParameterStore();
        try
        {
            foreach (var spec in architecture.Parameters)
                store.Set(spec.Name, ParameterStore.ReadTensor(source, stored[spec.Name]!));
            foreach (var linear in architecture.Linears.Where(l => l.IsConv1D))
                store.Set(linear.WeightName, store[linear.WeightName].t().contiguous());
            if (architecture.HeadIsTied) store.Tie(architecture.OutputHead, architecture.WordEmbeddings);
        }
        catch
        {
            store.Dispose();
            throw;
        }
        return store;
    }

    private static PretrainedModel Create(Architecture architecture, ParameterStore store) => architecture switch
    {
        BloomArchitecture a => new BloomForCausalLM(a, store),
        Gpt2Architecture a => new Gpt2LmHeadModel(a, store),
        OptArchitecture a => new OptForCausalLM(a, store),
        LlamaArchitecture a => new LlamaForCausalLM(a, store),
        T5Architecture a => new T5ForConditionalGeneration(a, store),
        _ => throw new PeftOnnxException($"no trainer model for {architecture.ClassName}"),
    };
}
