using System.Collections.Concurrent;
using Peft.Onnx.Exporter;
using Peft.Onnx.Runtime;

namespace Peft.Onnx.Tests.Support;

/// <summary>
/// Each fixture base model, and each fixture base + adapter, exported once per test run into a temp folder and loaded
/// once on the CPU; the folders are deleted when the process exits.
/// </summary>
public static class ExportedModels
{
    private static readonly ConcurrentDictionary<string, Lazy<string>> Folders = new();
    private static readonly ConcurrentDictionary<string, Lazy<OnnxModel>> Models = new();
    private static readonly ConcurrentDictionary<string, Lazy<OnnxModel>> AdapterModels = new();
    private static readonly string Root = Paths.TempDir("peft-onnx-runtime");

    static ExportedModels()
    {
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            foreach (var m in Models.Values.Concat(AdapterModels.Values)) if (m.IsValueCreated) m.Value.Dispose();
            try { Directory.Delete(Root, true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        };
    }

    /// <summary>The exported folder of models/{name} when it exists (with a tokenizer), else of tests/fixtures/peft-reference/{name}/base_model.</summary>
    public static string Folder(string arch) =>
        Folders.GetOrAdd(arch, a => new Lazy<string>(() =>
        {
            var dir = Path.Combine(Root, a);
            var source = Directory.Exists(Path.Combine(Paths.Models, a)) ? Path.Combine(Paths.Models, a) : Paths.Case(a, "base_model");
            OnnxExport.ExportBase(source, dir, new ExportOptions { Verify = false });
            return dir;
        })).Value;

    /// <summary>The exported fixture model loaded on the CPU (shared by the tests: the model is thread-safe).</summary>
    public static OnnxModel Model(string arch) =>
        Models.GetOrAdd(arch, a => new Lazy<OnnxModel>(() => OnnxModel.Load(Folder(a), DeviceOptions.Cpu))).Value;

    /// <summary>
    /// The fixture case's base + adapter compiled with <paramref name="options"/> (OnnxExport.Export), loaded on the CPU.
    /// </summary>
    public static OnnxModel Adapter(string arch, string method, ExportOptions options)
    {
        var key = $"{arch}-{method}-{(options.Merge ? "merged" : "unmerged")}-{options.DType}".ToLowerInvariant();
        return AdapterModels.GetOrAdd(key, k => new Lazy<OnnxModel>(() =>
        {
            var dir = Path.Combine(Root, "adapter-" + k);
            OnnxExport.Export(Paths.Case(arch, "base_model"), Paths.Case(arch, Path.Combine(method, "adapter")), dir, options);
            return OnnxModel.Load(dir, DeviceOptions.Cpu);
        })).Value;
    }

    /// <summary>A folder with a copy of the files of <paramref name="arch"/>'s export, for tests that change or remove files.</summary>
    public static string Copy(string arch)
    {
        var source = Folder(arch);
        var dir = Paths.TempDir("peft-onnx-runtime-copy");
        foreach (var f in Directory.GetFiles(source)) File.Copy(f, Path.Combine(dir, Path.GetFileName(f)));
        return dir;
    }
}
