using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Peft.Onnx.Core;
using Peft.Onnx.Core.SafeTensors;
using Peft.Onnx.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace Peft.Onnx.Tests.Fuzz;

/// <summary>
/// safetensors files: mutated headers (lengths, offsets, dtypes, shapes, overlaps, duplicates), mutated data
/// (NaN/Inf), and the sharded index of CheckpointTensors. Every tensor of a file that opens is read back in
/// every way (GetBytes, ReadFloat32, ReadInt64), and its span is checked to lie inside the file.
/// </summary>
public class SafeTensorsFuzzTests(ITestOutputHelper output)
{
    private static readonly string[] DTypeNames = [.. Enum.GetNames<DType>(), "F8_E4M3", "U16", "U32", "U64", "C64", "f32", "", "F32 "];

    /// <summary>Small real files (adapters, inputs) and one written here with every dtype, a scalar, an empty tensor and NaN/Inf.</summary>
    private static List<byte[]> SafeTensorsSeeds(string dir)
    {
        var seeds = Seeds.Named("*.safetensors", maxBytes: 40 * 1024);
        var path = Path.Combine(dir, "all-dtypes.safetensors");
        var tensors = new List<TensorData>();
        foreach (var dtype in Enum.GetValues<DType>())
        {
            var bytes = new byte[3 * dtype.Size()];
            for (int i = 0; i < bytes.Length; i++) bytes[i] = (byte)(i * 37 + 1);
            tensors.Add(new TensorData($"t.{dtype}", dtype, [3], bytes));
        }
        tensors.Add(TensorData.FromFloat32("special", [4], [float.NaN, float.PositiveInfinity, float.NegativeInfinity, -0f]));
        tensors.Add(TensorData.FromFloat32("scalar", [], [1.5f]));
        tensors.Add(TensorData.FromFloat32("empty", [0, 5], []));
        tensors.Add(TensorData.FromInt64("ids", [2, 2], [long.MinValue, long.MaxValue, -100, 0]));
        SafeTensorsWriter.Write(path, tensors, new Dictionary<string, string> { ["format"] = "pt" });
        seeds.Add(File.ReadAllBytes(path));
        File.Delete(path);
        return seeds;
    }

    /// <summary>Opens the file and reads every tensor every way; a read refused with PeftOnnxException does not stop the others.</summary>
    internal static void OpenAndReadAll(string path)
    {
        using var f = SafeTensorsFile.Open(path);
        ReadAll(f, f.Entries, DataLength(path), path);
    }

    /// <summary>Bytes after the header, from the file itself (what every span must stay inside).</summary>
    internal static long DataLength(string path)
    {
        var bytes = File.ReadAllBytes(path);
        return bytes.Length - 8 - (long)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
    }

    internal static void ReadAll(ITensorSource source, IEnumerable<TensorEntry> entries, long dataLength, string path)
    {
        foreach (var e in entries)
        {
            if (e.Begin < 0 || e.End < e.Begin || e.End > dataLength)
                throw new InvalidOperationException($"{path}: tensor '{e.Name}' spans [{e.Begin}, {e.End}) outside the {dataLength}-byte data area");
            _ = source[e.Name];
            try
            {
                var bytes = source.GetBytes(e.Name);
                if (bytes.Length != e.ByteLength) throw new InvalidOperationException($"GetBytes('{e.Name}') gave {bytes.Length} bytes, entry says {e.ByteLength}");
                long sum = 0;
                foreach (var b in bytes) sum += b; // touches every byte of the mapping
            }
            catch (PeftOnnxException) { }
            try { _ = source.ReadFloat32(e.Name); } catch (PeftOnnxException) { }
            try { _ = source.ReadInt64(e.Name); } catch (PeftOnnxException) { }
        }
        _ = source.Names.Count();
    }

    [Fact]
    public void Fuzz_safetensors_file()
    {
        var dir = Seeds.TempDir("safetensors");
        try
        {
            var seeds = SafeTensorsSeeds(dir);
            Assert.True(seeds.Count > 10);
            var path = Path.Combine(dir, "model.safetensors");
            new FuzzRunner("safetensors", output).Run(
                (r, i) =>
                {
                    var bytes = Mutate(seeds.Pick(r), r, huge: i % 500 == 7);
                    File.WriteAllBytes(path, bytes);
                    return bytes;
                },
                _ => OpenAndReadAll(path),
                bytes => bytes.Length);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }

    /// <summary>A mutated safetensors file: header structure, header bytes, length prefix, or tensor data.</summary>
    internal static byte[] Mutate(byte[] seed, Random r, bool huge = false)
    {
        ulong n = BinaryPrimitives.ReadUInt64LittleEndian(seed);
        var header = seed.AsSpan(8, (int)n).ToArray();
        var data = seed.AsSpan(8 + (int)n).ToArray();
        if (huge) return Assemble(Mutator.HugeJson(header, r), data);
        switch (r.Next(10))
        {
            case 0: case 1: case 2:
                return Assemble(Structured(header, data.Length, r), data);
            case 3: case 4:
                return Assemble(Mutator.Json(header, r), data);
            case 5: // header bytes mutated, length prefix kept as it was
                return [.. seed.AsSpan(0, 8), .. Mutator.Bytes(header, r), .. data];
            case 6: // length prefix replaced by an extreme or off-by-some value
            {
                ulong[] lengths = [0, 1, 2, 7, n - 1, n + 1, n + 8, (ulong)seed.Length, (ulong)seed.Length - 8, (ulong)seed.Length - 7,
                    uint.MaxValue, int.MaxValue, ulong.MaxValue, long.MaxValue, 1UL << 63, (ulong)SafeTensorsFile.MaxHeaderBytes + 1, ulong.MaxValue - 7];
                var result = seed.ToArray();
                BinaryPrimitives.WriteUInt64LittleEndian(result, lengths[r.Next(lengths.Length)]);
                return result;
            }
            case 7: // NaN / Inf / denormals written over tensor data
            {
                var result = seed.ToArray();
                byte[][] patterns = [[0x00, 0x00, 0xC0, 0x7F], [0x00, 0x00, 0x80, 0x7F], [0x00, 0x00, 0x80, 0xFF], [0x00, 0x7C], [0x80, 0x7F], [0xFF, 0xFF],
                    [0x01, 0x00, 0x00, 0x00], [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xF8, 0x7F], [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]];
                for (int k = 0, m = 1 + r.Next(16); k < m && data.Length > 8; k++)
                {
                    var p = patterns[r.Next(patterns.Length)];
                    int at = 8 + (int)n + r.Next(data.Length - p.Length + 1);
                    p.CopyTo(result, at);
                }
                return result;
            }
            case 8: // truncated (anywhere) or with bytes appended
                return r.Next(2) == 0 ? seed.AsSpan(0, r.Next(seed.Length)).ToArray() : [.. seed, .. new byte[1 + r.Next(16)]];
            default:
                return Mutator.Bytes(seed, r);
        }
    }

    private static byte[] Assemble(byte[] header, byte[] data)
    {
        var result = new byte[8 + header.Length + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(result, (ulong)header.Length);
        header.CopyTo(result, 8);
        data.CopyTo(result, 8 + header.Length);
        return result;
    }

    /// <summary>Entries rewritten so they stay well-formed JSON but lie: offsets, dtypes, shapes, overlaps, metadata.</summary>
    private static byte[] Structured(byte[] header, int dataLength, Random r)
    {
        var root = JsonNode.Parse(header)!.AsObject();
        var names = root.Select(p => p.Key).Where(k => k != "__metadata__").ToList();
        if (names.Count == 0) return header;
        var entry = root[names.Pick(r)]!.AsObject();
        var other = root[names.Pick(r)]!.AsObject();
        long L(long v) => v;
        switch (r.Next(9))
        {
            case 0: // offsets
            {
                long[][] offsets = [[0, 0], [-1, 3], [4, 0], [0, long.MaxValue], [long.MaxValue - 3, long.MaxValue], [long.MaxValue, long.MaxValue],
                    [0, dataLength], [dataLength, dataLength + 4], [dataLength - 4, dataLength], [1, 5], [int.MaxValue, int.MaxValue + 4L], [0, 1L << 32]];
                var o = offsets.Pick(r);
                entry["data_offsets"] = new JsonArray(o.Select(v => (JsonNode)JsonValue.Create(L(v))!).ToArray());
                break;
            }
            case 1: // overlap: another tensor's span and layout
                entry["data_offsets"] = other["data_offsets"]!.DeepClone();
                entry["shape"] = other["shape"]!.DeepClone();
                entry["dtype"] = other["dtype"]!.DeepClone();
                break;
            case 2: // dtype
                entry["dtype"] = DTypeNames.Pick(r);
                break;
            case 3: // shape whose product is huge, zero, negative or overflowing, keeping the offsets
            {
                long[][] shapes = [[], [0], [-1], [1L << 31, 1L << 31], [1L << 62, 4], [long.MaxValue], [0, long.MaxValue, long.MaxValue],
                    [long.MaxValue, long.MaxValue, 0], [1, 1, 1, 1], [3, -3], [int.MaxValue, 2], [1L << 32, 1L << 32, 1L << 32]];
                entry["shape"] = new JsonArray(shapes.Pick(r).Select(v => (JsonNode)JsonValue.Create(v)!).ToArray());
                break;
            }
            case 4: // a shape consistent with a huge span (declares more data than the file has)
                entry["shape"] = new JsonArray(JsonValue.Create(1L << 40));
                entry["dtype"] = "U8";
                entry["data_offsets"] = new JsonArray(JsonValue.Create(0L), JsonValue.Create(1L << 40));
                break;
            case 5: // metadata
            {
                JsonNode?[] metadata = [null, JsonValue.Create(1), new JsonArray(), new JsonObject { ["format"] = 1 },
                    new JsonObject { ["a\nb"] = "c\nd" }, new JsonObject { ["format"] = new JsonObject() }, JsonValue.Create("pt")];
                root["__metadata__"] = metadata.Pick(r)?.DeepClone();
                break;
            }
            case 6: // a key removed or a stray key added
                if (r.Next(2) == 0) entry.Remove(new[] { "dtype", "shape", "data_offsets" }.Pick(r));
                else entry["extra"] = JsonValue.Create(r.Next());
                break;
            case 7: // names with awkward characters
            {
                var name = names.Pick(r);
                var value = root[name]!.DeepClone();
                root.Remove(name);
                string[] awkward = ["", "a\nb", "a\rb", "\u0000", "__metadata__", "../x", "\ud800", new string('n', 100_000), "é\u2028"];
                root[awkward.Pick(r)] = value;
                break;
            }
            default: // a tensor dropped (gap) or duplicated under another name (overlap)
                if (r.Next(2) == 0) root.Remove(names.Pick(r));
                else root["copy." + r.Next(100)] = entry.DeepClone();
                break;
        }
        return Encoding.UTF8.GetBytes(root.ToJsonString(new JsonSerializerOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }));
    }

    /// <summary>CheckpointTensors over a sharded index: mutated model.safetensors.index.json (and now and then a mutated shard).</summary>
    [Fact]
    public void Fuzz_sharded_checkpoint_index()
    {
        var dir = Seeds.TempDir("sharded");
        try
        {
            // Two shards made from a real adapter file, and the index transformers would write for them.
            var source = Path.Combine(Paths.Case("bloom", "lora"), "adapter", "adapter_model.safetensors");
            var shardNames = new[] { "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors" };
            var weightMap = new JsonObject();
            long total = 0;
            using (var f = SafeTensorsFile.Open(source))
            {
                var halves = f.Entries.Select((e, k) => (e, k)).GroupBy(x => x.k % 2).ToList();
                foreach (var half in halves)
                {
                    var shard = shardNames[half.Key];
                    SafeTensorsWriter.Write(Path.Combine(dir, shard), half.Select(x => new TensorData(x.e.Name, x.e.DType, x.e.Shape, f.GetBytes(x.e.Name).ToArray())));
                    foreach (var (e, _) in half) { weightMap[e.Name] = shard; total += e.ByteLength; }
                }
            }
            var seed = Encoding.UTF8.GetBytes(new JsonObject { ["metadata"] = new JsonObject { ["total_size"] = total }, ["weight_map"] = weightMap }
                .ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            var shardBytes = shardNames.Select(s => File.ReadAllBytes(Path.Combine(dir, s))).ToArray();
            var indexPath = Path.Combine(dir, CheckpointTensors.IndexFile);
            var dirty = new bool[2];

            new FuzzRunner("safetensors-index", output).Run(
                (r, i) =>
                {
                    var index = i % 500 == 7 ? Mutator.HugeJson(seed, r) : r.Next(8) == 0 ? seed : Mutator.Json(seed, r);
                    File.WriteAllBytes(indexPath, index);
                    int mutatedShard = r.Next(8) == 0 ? r.Next(2) : -1;
                    for (int k = 0; k < 2; k++)
                    {
                        if (k != mutatedShard && !dirty[k]) continue;
                        File.WriteAllBytes(Path.Combine(dir, shardNames[k]), k == mutatedShard ? Mutate(shardBytes[k], r) : shardBytes[k]);
                        dirty[k] = k == mutatedShard;
                    }
                    return index;
                },
                _ =>
                {
                    using var c = CheckpointTensors.Open(dir);
                    foreach (var f in c.Files) ReadAll(f, f.Entries, DataLength(f.Path), f.Path);
                    foreach (var name in c.Names)
                    {
                        var f = c.FileOf(name);
                        ReadAll(c, [f[name]], DataLength(f.Path), f.Path);
                    }
                },
                index => index.Length + shardBytes.Sum(b => b.LongLength));
        }
        finally { Directory.Delete(dir, recursive: true); }
    }
}
