using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.Tokenization;
using Peft.Onnx.Exporter;
using Peft.Onnx.Trainer.Finetune;
using Peft.Onnx.Trainer.Modeling;
using Peft.Onnx.Trainer.Tuners;
using static TorchSharp.torch;
using Peft.Onnx.Core.Data;

namespace Peft.Onnx.Bench;

/// <summary>One exported folder that bench times: its name, the folder, and the virtual tokens it adds to every row.</summary>
public sealed record BenchVariant(string Name, string Dir, int VirtualTokens)
{
    /// <summary>A multi-adapter export's adapters, row i taking entry i modulo their count (null = the base); null: no adapter input.</summary>
    public IReadOnlyList<string?>? RowAdapters { get; init; }
}

/// <summary>
/// Random adapters of each kind on one base (the Trainer's PeftModel.Create + Save; LoRA's B is randomised so the
/// merge is not a no-op), exported as bench serves them: base graph, merged LoRA, unmerged LoRA, merged IA3, baked
/// prompt tuning, baked prefix.
/// </summary>
public static class AdapterVariants
{
    public const int VirtualTokens = 8;

    public static string CreateAdapter(string baseDir, string method, string outDir, long seed = 0)
    {
        var config = ModelConfig.Load(baseDir);
        var task = config.IsEncoderDecoder ? TaskKind.Seq2SeqLm : TaskKind.CausalLm;
        var prompt = method is "prompt_tuning" or "p_tuning" or "prefix_tuning";
        var adapterConfig = FinetuneSetup.ConfigFor(method, new MethodOptions { NumVirtualTokens = prompt ? VirtualTokens : null }, task, baseDir,
            HfTokenizer.FromFolder(baseDir));
        using var model = PeftModel.Create(ModelLoader.Load(baseDir), adapterConfig, seed);
        using (no_grad())
            foreach (var (name, p) in model.Tuner.TrainableParameters)
                if (name.Contains("lora_B", StringComparison.Ordinal)) p.normal_(0, 0.02);
        model.Save(outDir);
        return outDir;
    }

    public static List<BenchVariant> Export(string baseDir, string work, TextWriter log)
    {
        var variants = new List<BenchVariant>();
        void Add(string name, string? adapter, bool merge, int virtualTokens)
        {
            var dir = Path.Combine(work, "onnx-" + name);
            OnnxExport.Export(baseDir, adapter, dir, new ExportOptions { Merge = merge, Overwrite = true });
            variants.Add(new BenchVariant(name, dir, virtualTokens));
            log.WriteLine($"bench: exported {name}");
        }
        var lora = CreateAdapter(baseDir, "lora", Path.Combine(work, "adapter-lora"));
        var ia3 = CreateAdapter(baseDir, "ia3", Path.Combine(work, "adapter-ia3"));
        var pt = CreateAdapter(baseDir, "prompt_tuning", Path.Combine(work, "adapter-prompt_tuning"));
        var prefix = CreateAdapter(baseDir, "prefix_tuning", Path.Combine(work, "adapter-prefix"));
        Add("base", null, true, 0);
        Add("lora_merged", lora, true, 0);
        Add("lora_unmerged", lora, false, 0);
        Add("ia3_merged", ia3, true, 0);
        Add("prompt_tuning", pt, true, VirtualTokens);
        Add("prefix", prefix, true, VirtualTokens);
        return variants;
    }
}
