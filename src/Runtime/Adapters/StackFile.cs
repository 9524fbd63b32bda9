using Peft.Onnx.Core;
using Peft.Onnx.Core.Onnx;

namespace Peft.Onnx.Runtime.Adapters;

/// <summary>Reads a multi-adapter export's stacked tensors from its data file at the offsets adapters.json records (no graph parsing).</summary>
internal static class StackFile
{
    /// <summary>One tensor of <paramref name="dir"/>'s data file.</summary>
    public static float[] Read(string dir, AdapterStackTensor tensor) => ReadAll(dir, [tensor])[tensor.Name].Values;

    public static Dictionary<string, StackBuffer> ReadAll(string dir, IReadOnlyList<AdapterStackTensor> stacks)
    {
        var result = new Dictionary<string, StackBuffer>(StringComparer.Ordinal);
        foreach (var group in stacks.GroupBy(s => s.Location))
        {
            var path = SafePath.Inside(dir, group.Key, Path.Combine(dir, AdapterManifest.FileName));
            if (!File.Exists(path)) throw new PeftOnnxException($"{Path.Combine(dir, AdapterManifest.FileName)}: stacks lie in '{group.Key}', which is not in the folder");
            using var file = File.OpenHandle(path);
            long size = RandomAccess.GetLength(file);
            foreach (var s in group)
            {
                if (s.Offset + s.Length > size)
                    throw new PeftOnnxException($"{path}: stack '{s.Name}' at {s.Offset} + {s.Length} bytes lies past the end ({size} bytes)");
                var values = new float[s.ElementCount];
                var bytes = System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan());
                for (int done = 0; done < bytes.Length;)
                {
                    int n = RandomAccess.Read(file, bytes[done..], s.Offset + done);
                    if (n <= 0) throw new PeftOnnxException($"{path}: short read of stack '{s.Name}'");
                    done += n;
                }
                result[s.Name] = new StackBuffer(values, s.Dims);
            }
        }
        return result;
    }
}
