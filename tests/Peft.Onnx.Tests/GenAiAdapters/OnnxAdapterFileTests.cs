using System.Buffers.Binary;
using System.Text;
using Peft.Onnx.Core;
using Peft.Onnx.Exporter.GenAiAdapters;
using Peft.Onnx.Tests.Support;
using Xunit;

namespace Peft.Onnx.Tests.GenAiAdapters;

/// <summary>
/// The .onnx_adapter writer read back by a reader written here from the FlatBuffers rules (root offset, "TORT",
/// vtables, forward offsets, strings, vectors) and the adapter schema's field order; malformed parameters refused.
/// </summary>
public class OnnxAdapterFileTests
{
    [Fact]
    public void Written_file_reads_back_field_by_field()
    {
        var dir = Paths.TempDir();
        try
        {
            var path = Path.Combine(dir, "a" + OnnxAdapterFile.Extension);
            var parameters = new List<OnnxAdapterParameter>
            {
                new("m.lora_A.weight", [3, 2], [1f, -2f, 3.5f, 4f, 5f, 6.25f]),
                new("m.lora_B.weight", [2, 1], [0.5f, -0.125f]),
                new("odd name ü", [1], [7f]),
            };
            long size = OnnxAdapterFile.Write(path, parameters, adapterVersion: 3, modelVersion: 5);
            var bytes = File.ReadAllBytes(path);
            Assert.Equal(size, bytes.Length);

            var read = Reader.Read(bytes);
            Assert.Equal((1, 3, 5), (read.FormatVersion, read.AdapterVersion, read.ModelVersion));
            Assert.Equal(parameters.Count, read.Parameters.Count);
            for (int i = 0; i < parameters.Count; i++)
            {
                var (name, dims, type, raw, rawOffset) = read.Parameters[i];
                Assert.Equal(parameters[i].Name, name);
                Assert.Equal(parameters[i].Dims, dims);
                Assert.Equal(1, type);
                Assert.Equal(0, rawOffset % 8); // force_align: 8 on raw_data
                Assert.Equal(parameters[i].Values, Enumerable.Range(0, raw.Length / 4).Select(k => BitConverter.ToSingle(raw, 4 * k)));
            }
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void Duplicate_names_and_shapes_that_do_not_match_the_values_are_refused()
    {
        var dir = Paths.TempDir();
        try
        {
            var path = Path.Combine(dir, "a" + OnnxAdapterFile.Extension);
            var twice = Assert.Throws<PeftOnnxException>(() => OnnxAdapterFile.Write(path, [new("x", [1], [1f]), new("x", [1], [2f])]));
            Assert.Contains("'x'", twice.Message);
            var shape = Assert.Throws<PeftOnnxException>(() => OnnxAdapterFile.Write(path, [new("y", [2, 2], [1f, 2f, 3f])]));
            Assert.Contains("[2, 2]", shape.Message);
            Assert.False(File.Exists(path));
        }
        finally { Directory.Delete(dir, true); }
    }

    /// <summary>A FlatBuffers reader for the adapter schema, independent of the writer: every offset followed as the format defines it.</summary>
    private static class Reader
    {
        public static (int FormatVersion, int AdapterVersion, int ModelVersion, List<(string, long[], int, byte[], int)> Parameters) Read(byte[] b)
        {
            Assert.Equal("TORT", Encoding.ASCII.GetString(b, 4, 4));
            int root = U32(b, 0);
            var p = new List<(string, long[], int, byte[], int)>();
            int list = Deref(b, Field(b, root, 3)!.Value);
            int count = U32(b, list);
            for (int i = 0; i < count; i++)
            {
                int table = Deref(b, list + 4 + 4 * i);
                int nameAt = Deref(b, Field(b, table, 0)!.Value);
                var name = Encoding.UTF8.GetString(b, nameAt + 4, U32(b, nameAt));
                Assert.Equal(0, b[nameAt + 4 + U32(b, nameAt)]);
                int dimsAt = Deref(b, Field(b, table, 1)!.Value);
                var dims = Enumerable.Range(0, U32(b, dimsAt)).Select(d => BinaryPrimitives.ReadInt64LittleEndian(b.AsSpan(dimsAt + 4 + 8 * d))).ToArray();
                int type = BinaryPrimitives.ReadInt32LittleEndian(b.AsSpan(Field(b, table, 2)!.Value));
                int rawAt = Deref(b, Field(b, table, 3)!.Value);
                p.Add((name, dims, type, b.AsSpan(rawAt + 4, U32(b, rawAt)).ToArray(), rawAt + 4));
            }
            int Int(int f) => BinaryPrimitives.ReadInt32LittleEndian(b.AsSpan(Field(b, root, f)!.Value));
            return (Int(0), Int(1), Int(2), p);
        }

        /// <summary>Position of field <paramref name="index"/> of the table at <paramref name="table"/>, null when absent.</summary>
        private static int? Field(byte[] b, int table, int index)
        {
            int vtable = table - BinaryPrimitives.ReadInt32LittleEndian(b.AsSpan(table));
            int vtableSize = BinaryPrimitives.ReadUInt16LittleEndian(b.AsSpan(vtable));
            if (4 + 2 * index >= vtableSize) return null;
            int offset = BinaryPrimitives.ReadUInt16LittleEndian(b.AsSpan(vtable + 4 + 2 * index));
            return offset == 0 ? null : table + offset;
        }

        private static int Deref(byte[] b, int at) => at + U32(b, at);

        private static int U32(byte[] b, int at) => checked((int)BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(at)));
    }
}
