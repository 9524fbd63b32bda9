using System.Collections.Concurrent;
using Peft.Onnx.Exporter;
using Peft.Onnx.Runtime;
using Xunit;

namespace Peft.Onnx.Tests.Support;

/// <summary>
/// The multi-adapter exports and the single-adapter exports they are compared with, each written once per test run
/// under a key that names what it holds (the multi-adapter test classes share them), and the left-padded batches they run.
/// </summary>
internal static class MultiAdapterFolders
{
    private static readonly ConcurrentDictionary<string, Lazy<string>> Made = new();

    /// <summary>One export of <paramref name="adapters"/> (named) over <paramref name="baseDir"/>.</summary>
    public static string Multi(string key, string baseDir, IReadOnlyList<(string Name, string Dir)> adapters, ExportOptions? options = null) =>
        Made.GetOrAdd("multi/" + key, _ => new Lazy<string>(() =>
        {
            var dir = TempExports.FreshPath();
            MultiAdapterExport.Export(baseDir, adapters.Select(a => new NamedAdapter(a.Name, a.Dir)).ToList(), dir, options ?? new ExportOptions());
            return dir;
        })).Value;

    /// <summary>The single-adapter export of one adapter folder (null: the base alone); unchecked unless the options say otherwise.</summary>
    public static string Single(string key, string baseDir, string? adapterDir, ExportOptions? options = null) =>
        Made.GetOrAdd("single/" + key, _ => new Lazy<string>(() =>
        {
            var dir = TempExports.FreshPath();
            OnnxExport.Export(baseDir, adapterDir, dir, options ?? new ExportOptions { Verify = false });
            return dir;
        })).Value;

    /// <summary>Prompts left-padded to the longest as one batch: ids and mask [rows, total], row-major.</summary>
    public static (long[] Ids, long[] Mask, int Total) LeftPadded(IReadOnlyList<long[]> prompts)
    {
        int batch = prompts.Count, total = prompts.Max(p => p.Length);
        var ids = new long[batch * total];
        var mask = new long[batch * total];
        for (int r = 0; r < batch; r++)
        {
            int pad = total - prompts[r].Length;
            for (int t = 0; t < prompts[r].Length; t++) { ids[r * total + pad + t] = prompts[r][t]; mask[r * total + pad + t] = 1; }
        }
        return (ids, mask, total);
    }

    /// <summary>
    /// Generates every row greedily in one mixed batch of <paramref name="model"/> (a multi-adapter export) and asserts that
    /// each row's new tokens are those of its own export (<paramref name="ownExport"/> of the row's adapter) generating it alone.
    /// </summary>
    public static GenerationResult AssertRowsGenerateAsTheirOwnExports(OnnxModel model, IReadOnlyList<string?> adapters,
        IReadOnlyList<IReadOnlyList<int>> prompts, Func<string?, string> ownExport, int tokens)
    {
        var result = model.Generate(new GenerationRequest { InputIds = prompts, Adapters = adapters, Options = GenerationOptions.Greedy(tokens) });
        for (int r = 0; r < prompts.Count; r++)
        {
            using var single = OnnxModel.Load(ownExport(adapters[r]), DeviceOptions.Cpu);
            Assert.Equal(single.Generate(GenerationRequest.FromIds(prompts[r], GenerationOptions.Greedy(tokens))).NewTokens[0], result.NewTokens[r]);
        }
        return result;
    }
}
