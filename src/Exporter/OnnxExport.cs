using Peft.Onnx.Core;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.SafeTensors;
using Peft.Onnx.Exporter.Graphs;
using Peft.Onnx.Exporter.Onnx;
using Peft.Onnx.Exporter.Weights;

namespace Peft.Onnx.Exporter;

/// <summary>Options of an export (defaults: inline initializers under 1 KB, check with ORT).</summary>
public sealed record ExportOptions
{
    /// <summary>How model.onnx / model.onnx.data are laid out.</summary>
    public ModelWriteOptions Write { get; init; } = new();

    /// <summary>Load the result in ONNX Runtime and run a prefill + decode step before reporting success.</summary>
    public bool Verify { get; init; } = true;
}

/// <summary>What an export wrote.</summary>
public sealed record ExportResult(string OutDir, ModelWriteResult Model, IReadOnlyList<string> CopiedFiles, OnnxCheckReport? Check);

/// <summary>Compiles Hugging Face checkpoints into self-contained ONNX folders.</summary>
public static class OnnxExport
{
    public const string ModelFile = "model.onnx";
    public const string DataFile = "model.onnx.data";

    /// <summary>Files copied unchanged from the checkpoint folder when present.</summary>
    public static readonly string[] SideFiles =
    [
        "config.json", "generation_config.json",
        "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
        "vocab.json", "merges.txt", "spiece.model", "tokenizer.model", "sentencepiece.bpe.model",
    ];

    /// <summary>
    /// Exports the base model in <paramref name="modelDir"/> (config.json + safetensors) to
    /// <paramref name="outDir"/>: model.onnx, model.onnx.data and copies of the config and tokenizer files.
    /// The folder appears complete or not at all (written beside it, checked with ORT, then renamed);
    /// an existing non-empty <paramref name="outDir"/> is refused.
    /// </summary>
    public static void ExportBase(string modelDir, string outDir) => ExportBase(modelDir, outDir, new ExportOptions());

    public static ExportResult ExportBase(string modelDir, string outDir, ExportOptions options)
    {
        if (!Directory.Exists(modelDir)) throw new PeftOnnxException($"{modelDir}: model folder not found");
        var config = ModelConfig.Load(modelDir);
        if (!IsSupported(config))
            throw new PeftOnnxException($"{config.SourcePath}: ONNX export of model_type '{config.ModelType}' is not supported yet (supported: bloom)");
        using var tensors = CheckpointTensors.Open(modelDir);
        var weights = new CheckpointWeights(tensors);
        weights.Validate(Core.Architectures.Architecture.For(config), modelDir);
        var graph = BuildGraph(config, weights);
        return WriteFolder(graph, modelDir, outDir, options);
    }

    /// <summary>True for the families that have a graph in Graphs/.</summary>
    public static bool IsSupported(ModelConfig config) => config is BloomConfig;

    /// <summary>The family's graph for a config (base weights from <paramref name="weights"/>).</summary>
    public static GraphBuilder BuildGraph(ModelConfig config, WeightSource weights) => config switch
    {
        BloomConfig c => BloomGraph.Build(c, weights),
        _ => throw new PeftOnnxException($"{config.SourcePath}: ONNX export of model_type '{config.ModelType}' is not supported yet (supported: bloom)"),
    };

    /// <summary>Writes model + side files into a temporary folder beside <paramref name="outDir"/>, verifies, renames.</summary>
    public static ExportResult WriteFolder(GraphBuilder graph, string sourceDir, string outDir, ExportOptions options)
    {
        var target = Path.GetFullPath(outDir.TrimEnd(Path.DirectorySeparatorChar));
        if (File.Exists(target)) throw new PeftOnnxException($"{outDir}: exists and is a file (expected a new or empty folder)");
        if (Directory.Exists(target) && Directory.EnumerateFileSystemEntries(target).Any())
            throw new PeftOnnxException($"{outDir}: folder is not empty (refusing to overwrite; choose a new folder)");
        var parent = Path.GetDirectoryName(target)!;
        Directory.CreateDirectory(parent);
        var temp = Path.Combine(parent, $".{Path.GetFileName(target)}.export-{Guid.NewGuid():N}");
        Directory.CreateDirectory(temp);
        try
        {
            var write = options.Write with { DataFileName = DataFile };
            var model = ModelWriter.Write(graph, Path.Combine(temp, ModelFile), write);
            var copied = new List<string>();
            foreach (var f in SideFiles)
            {
                var src = Path.Combine(sourceDir, f);
                if (!File.Exists(src)) continue;
                File.Copy(src, Path.Combine(temp, f));
                copied.Add(f);
            }
            var check = options.Verify ? OnnxCheck.CausalLm(Path.Combine(temp, ModelFile)) : null;

            if (Directory.Exists(target))
            {
                if (Directory.EnumerateFileSystemEntries(target).Any())
                    throw new PeftOnnxException($"{outDir}: folder became non-empty during the export (refusing to overwrite)");
                Directory.Delete(target);
            }
            Directory.Move(temp, target);
            var final = model with
            {
                ModelPath = Path.Combine(target, ModelFile),
                DataPath = model.DataPath == null ? null : Path.Combine(target, DataFile),
            };
            return new ExportResult(target, final, copied, check);
        }
        catch
        {
            try { Directory.Delete(temp, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            throw;
        }
    }
}
