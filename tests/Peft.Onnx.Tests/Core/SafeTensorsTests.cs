using System.Buffers.Binary;
using System.Text;
using Peft.Onnx.Core;
using Peft.Onnx.Core.SafeTensors;
using Peft.Onnx.Tests.Support;
using Xunit;

namespace Peft.Onnx.Tests.Core;

public class SafeTensorsTests
{
    [Fact]
    public void Reads_fixture_adapter_tensors_and_metadata()
    {
        using var f = SafeTensorsFile.Open(Path.Combine(Paths.Case("bloom", "lora"), "adapter", "adapter_model.safetensors"));
        Assert.Equal("pt", f.Metadata["format"]);
        var a = f["base_model.model.transformer.h.0.self_attention.query_key_value.lora_A.weight"];
        Assert.Equal(new long[] { 4, 64 }, a.Shape);
        Assert.Equal(DType.F32, a.DType);
        Assert.Equal(256, f.ReadFloat32(a.Name).Length);
    }

    [Fact]
    public void Rewriting_a_fixture_file_gives_identical_bytes()
    {
        // Same layout as Python's safetensors: ordering, header padding, metadata first.
        foreach (var file in new[] { Path.Combine(Paths.Case("bloom", "lora"), "adapter", "adapter_model.safetensors"),
                                     Path.Combine(Paths.Case("bloom"), "inputs.safetensors"),
                                     Path.Combine(Paths.Case("gpt2", "base_model"), "model.safetensors") })
        {
            var dir = Paths.TempDir();
            var copy = Path.Combine(dir, "copy.safetensors");
            using (var f = SafeTensorsFile.Open(file))
                SafeTensorsWriter.Write(copy, f.Entries.Select(e => new TensorData(e.Name, e.DType, e.Shape, f.GetBytes(e.Name).ToArray())), f.Metadata);
            Assert.Equal(File.ReadAllBytes(file), File.ReadAllBytes(copy));
            Directory.Delete(dir, true);
        }
    }

    [Theory]
    [InlineData(DType.F16), InlineData(DType.BF16), InlineData(DType.F64), InlineData(DType.F32)]
    public void Float_types_widen_to_float32(DType dtype)
    {
        float[] values = [0f, 1f, -2.5f, 0.15625f, 65504f];
        byte[] bytes = new byte[values.Length * dtype.Size()];
        for (int i = 0; i < values.Length; i++)
        {
            var slot = bytes.AsSpan(i * dtype.Size());
            switch (dtype)
            {
                case DType.F16: BinaryPrimitives.WriteHalfLittleEndian(slot, (Half)values[i]); break;
                case DType.BF16: BinaryPrimitives.WriteUInt16LittleEndian(slot, TensorConvert.SingleToBFloat16(values[i])); break;
                case DType.F64: BinaryPrimitives.WriteDoubleLittleEndian(slot, values[i]); break;
                default: BinaryPrimitives.WriteSingleLittleEndian(slot, values[i]); break;
            }
        }
        var path = Path.Combine(Paths.TempDir(), "t.safetensors");
        SafeTensorsWriter.Write(path, [new TensorData("x", dtype, [values.Length], bytes)]);
        using var f = SafeTensorsFile.Open(path);
        var read = f.ReadFloat32("x");
        for (int i = 0; i < values.Length; i++)
        {
            float expected = dtype switch
            {
                DType.F16 => (float)(Half)values[i],
                DType.BF16 => TensorConvert.BFloat16ToSingle(TensorConvert.SingleToBFloat16(values[i])),
                _ => values[i],
            };
            Assert.Equal(expected, read[i]);
        }
    }

    [Theory]
    [InlineData(DType.I64), InlineData(DType.I32), InlineData(DType.I8), InlineData(DType.U8), InlineData(DType.BOOL)]
    public void Integer_types_widen_to_int64(DType dtype)
    {
        long[] values = dtype is DType.U8 or DType.BOOL ? [0, 1, 1, 0] : [0, 1, -1, 7];
        var bytes = new byte[values.Length * dtype.Size()];
        for (int i = 0; i < values.Length; i++)
        {
            var slot = bytes.AsSpan(i * dtype.Size());
            switch (dtype)
            {
                case DType.I64: BinaryPrimitives.WriteInt64LittleEndian(slot, values[i]); break;
                case DType.I32: BinaryPrimitives.WriteInt32LittleEndian(slot, (int)values[i]); break;
                default: slot[0] = (byte)values[i]; break;
            }
        }
        var path = Path.Combine(Paths.TempDir(), "t.safetensors");
        SafeTensorsWriter.Write(path, [new TensorData("x", dtype, [2, 2], bytes)]);
        using var f = SafeTensorsFile.Open(path);
        Assert.Equal(values, f.ReadInt64("x"));
    }

    public static TheoryData<string, string> CorruptHeaders => new()
    {
        { "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", "needs 8 bytes" },
        { "{\"x\":{\"dtype\":\"Q7\",\"shape\":[1],\"data_offsets\":[0,4]}}", "unknown dtype 'Q7'" },
        { "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"y\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[2,6]}}", "overlap" },
        { "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", "gap" },
        { "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}", "not valid JSON" },
        { "{\"x\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", "non-negative" },
        { "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,400]}}", "past the data area" },
        { "[1,2]", "not a JSON object" },
        { "{\"__metadata__\":{\"a\":1}}", "must be a string" },
        { "{\"x\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4],\"data_offsets\":[0,4]}}", "too large" },
    };

    [Theory, MemberData(nameof(CorruptHeaders))]
    public void Corrupt_headers_are_refused_with_a_message_naming_the_file(string header, string expected)
    {
        var path = Path.Combine(Paths.TempDir(), "bad.safetensors");
        var json = Encoding.UTF8.GetBytes(header);
        var bytes = new byte[8 + json.Length + 8];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)json.Length);
        json.CopyTo(bytes, 8);
        File.WriteAllBytes(path, bytes);
        var ex = Assert.Throws<PeftOnnxException>(() => SafeTensorsFile.Open(path).Dispose());
        Assert.Contains(path, ex.Message);
        Assert.Contains(expected, ex.Message);
    }

    [Fact]
    public void Truncated_file_is_refused()
    {
        var source = File.ReadAllBytes(Path.Combine(Paths.Case("bloom"), "inputs.safetensors"));
        var path = Path.Combine(Paths.TempDir(), "truncated.safetensors");
        foreach (var cut in new[] { 0, 5, 12, source.Length / 2, source.Length - 1 })
        {
            File.WriteAllBytes(path, source[..cut]);
            var ex = Assert.Throws<PeftOnnxException>(() => SafeTensorsFile.Open(path).Dispose());
            Assert.Contains(path, ex.Message);
        }
    }

    [Fact]
    public void Sharded_checkpoint_reads_across_shards_and_rejects_escaping_paths()
    {
        var dir = Paths.TempDir();
        SafeTensorsWriter.Write(Path.Combine(dir, "model-00001-of-00002.safetensors"), [TensorData.FromFloat32("a", [2], [1f, 2f])]);
        SafeTensorsWriter.Write(Path.Combine(dir, "model-00002-of-00002.safetensors"), [TensorData.FromFloat32("b", [1], [3f])]);
        File.WriteAllText(Path.Combine(dir, CheckpointTensors.IndexFile),
            "{\"metadata\":{\"total_size\":12},\"weight_map\":{\"a\":\"model-00001-of-00002.safetensors\",\"b\":\"model-00002-of-00002.safetensors\"}}");
        using (var ckpt = CheckpointTensors.Open(dir))
        {
            Assert.Equal(new[] { 1f, 2f }, ckpt.ReadFloat32("a"));
            Assert.Equal(new[] { 3f }, ckpt.ReadFloat32("b"));
        }
        File.WriteAllText(Path.Combine(dir, CheckpointTensors.IndexFile), "{\"weight_map\":{\"a\":\"../../etc/passwd\"}}");
        var ex = Assert.Throws<PeftOnnxException>(() => CheckpointTensors.Open(dir).Dispose());
        Assert.Contains("escapes", ex.Message);
    }

    [Fact]
    public void Pickle_checkpoints_are_refused_with_a_conversion_hint()
    {
        var dir = Paths.TempDir();
        File.WriteAllBytes(Path.Combine(dir, "pytorch_model.bin"), [0x80, 0x02]);
        var ex = Assert.Throws<PeftOnnxException>(() => CheckpointTensors.Open(dir).Dispose());
        Assert.Contains("safetensors", ex.Message);
        Assert.Contains("pytorch_model.bin", ex.Message);
    }

    [Fact]
    public void Writer_leaves_no_temp_file_and_replaces_atomically()
    {
        var dir = Paths.TempDir();
        var path = Path.Combine(dir, "x.safetensors");
        SafeTensorsWriter.Write(path, [TensorData.FromFloat32("a", [1], [1f])]);
        SafeTensorsWriter.Write(path, [TensorData.FromFloat32("a", [1], [2f])]);
        Assert.Single(Directory.GetFiles(dir));
        using var f = SafeTensorsFile.Open(path);
        Assert.Equal(2f, f.ReadFloat32("a")[0]);
    }
}
