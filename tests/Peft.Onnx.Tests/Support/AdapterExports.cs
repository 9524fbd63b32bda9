using System.Collections.Concurrent;
using Peft.Onnx.Exporter;
using Peft.Onnx.Runtime;

namespace Peft.Onnx.Tests.Support;

/// <summary>
/// Fixture base + adapter exports, each written once per test run into a temp folder and loaded once on the CPU;
/// deleted when the process exits.
/// </summary>
public static class AdapterExports
{
    private static readonly ConcurrentDictionary<string, Lazy<OnnxModel>> Models = new();
    private static readonly string Root = Paths.TempDir("peft-onnx-adapter-exports");

    static AdapterExports()
    {
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            foreach (var m in Models.Values) if (m.IsValueCreated) m.Value.Dispose();
            try { Directory.Delete(Root, true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        };
    }

    public static OnnxModel Model(string arch, string method, ExportOptions options)
    {
        var key = $"{arch}-{method}-{(options.Merge ? "merged" : "unmerged")}-{options.DType}".ToLowerInvariant();
        return Models.GetOrAdd(key, k => new Lazy<OnnxModel>(() =>
        {
            var dir = Path.Combine(Root, k);
            OnnxExport.Export(Paths.Case(arch, "base_model"), Paths.Case(arch, Path.Combine(method, "adapter")), dir, options);
            return OnnxModel.Load(dir, DeviceOptions.Cpu);
        })).Value;
    }
}
