using Peft.Onnx.Bench;
using Peft.Onnx.Exporter.Onnx;
using Peft.Onnx.Exporter.Onnx.Proto;
using Xunit;

namespace Peft.Onnx.Tests.Cli;

/// <summary>bench --quantize's kernel ceiling: the settings read from a graph, the bytes of a weight, and the floor/verdict arithmetic.</summary>
public class BenchKernelCeilingTests
{
    private static NodeProto NBits(long k, long n, long bits, long block, long level, bool zeroPoints = false)
    {
        var node = new NodeProto { OpType = "MatMulNBits", Domain = "com.microsoft" };
        node.Input.AddRange(zeroPoints ? ["x", "w_Q", "w_scales", "w_zero_points"] : ["x", "w_Q", "w_scales"]);
        node.Attribute.AddRange([Attr.Int("K", k), Attr.Int("N", n), Attr.Int("bits", bits), Attr.Int("block_size", block), Attr.Int("accuracy_level", level)]);
        return node;
    }

    [Fact]
    public void Settings_are_grouped_by_bits_block_level_zero_points_and_shape_in_first_seen_order()
    {
        var nodes = new List<NodeProto>
        {
            NBits(1024, 3072, 4, 16, 4), NBits(1024, 1024, 4, 16, 4), new() { OpType = "MatMul" }, NBits(1024, 3072, 4, 16, 4),
            NBits(1024, 3072, 4, 32, 4), NBits(1024, 3072, 4, 16, 0), NBits(1024, 3072, 4, 16, 4, zeroPoints: true),
            NBits(1024, 250880, 8, 16, 4), NBits(1024, 1024, 4, 16, 4),
        };
        // an empty optional input is no zero point
        nodes.Add(NBits(1024, 1024, 4, 16, 4));
        nodes[^1].Input.AddRange(["", "g_idx"]);
        var shapes = MatMulNBitsShape.Group(nodes);
        Assert.Equal(
        [
            new MatMulNBitsShape(4, 16, 4, false, 1024, 3072, 2),
            new MatMulNBitsShape(4, 16, 4, false, 1024, 1024, 3),
            new MatMulNBitsShape(4, 32, 4, false, 1024, 3072, 1),
            new MatMulNBitsShape(4, 16, 0, false, 1024, 3072, 1),
            new MatMulNBitsShape(4, 16, 4, true, 1024, 3072, 1),
            new MatMulNBitsShape(8, 16, 4, false, 1024, 250880, 1),
        ], shapes);
        Assert.Equal(2L * 1024 * 3072, shapes[0].Weights);
        Assert.Equal(3L * 1024 * 1024, shapes[1].Weights);
    }

    [Fact]
    public void Node_bytes_count_codes_scales_and_packed_zero_points_of_padded_blocks()
    {
        // 4-bit block 16, K 1024: 64 blocks of 8 code bytes and one float scale each, per output
        Assert.Equal(2 * (64 * 8 + 64 * 4), MatMulNBitsShape.ByteCount(4, 16, false, 1024, 2));
        // zero points: two blocks per byte (4 bits), one per block (8 bits)
        Assert.Equal(2 * (64 * 8 + 64 * 4 + 32), MatMulNBitsShape.ByteCount(4, 16, true, 1024, 2));
        Assert.Equal(3 * (32 * 32 + 32 * 4 + 32), MatMulNBitsShape.ByteCount(8, 32, true, 1024, 3));
        // K 40 in blocks of 16: three blocks, the last zero-padded; three 4-bit zero points take two bytes
        Assert.Equal(3 * 8 + 3 * 4 + 2, MatMulNBitsShape.ByteCount(4, 16, true, 40, 1));
        Assert.Equal(new MatMulNBitsShape(8, 32, 4, false, 4096, 1024, 24).NodeBytes, MatMulNBitsShape.ByteCount(8, 32, false, 4096, 1024));
    }

    [Fact]
    public void Floor_sums_each_settings_weights_over_its_rate_and_the_verdict_compares_floor_plus_rest_with_the_goals_step()
    {
        var body = new MatMulNBitsShape(4, 16, 4, false, 1024, 4096, 24);
        var head = new MatMulNBitsShape(8, 16, 4, false, 1024, 250880, 1);
        double Rate(MatMulNBitsShape s) => s.Bits == 4 ? 20e9 : 10e9;
        double floor = StepVerdict.Floor([body, head], Rate);
        Assert.Equal(24.0 * 1024 * 4096 / 20e9 * 1e6 + 1024.0 * 250880 / 10e9 * 1e6, floor, 6);
        // the rest: the measured step times the profile's share outside MatMulNBits (10,000 of 50,000 us)
        Assert.Equal(8_000.0, StepVerdict.Rest(40_000, 50_000, 40_000), 9);
        Assert.Equal(0.0, StepVerdict.Rest(9_000, 9_000, 10_000));
        Assert.Equal(0.0, StepVerdict.Rest(9_000, 0, 0));
        Assert.Equal(25_000.0, StepVerdict.Needed(100_000, 4.0));
        var verdict = new StepVerdict(floor, 10_000, 25_000);
        Assert.Equal(floor + 10_000, verdict.StepMicroseconds);
        Assert.False(verdict.Reachable); // 30,720 us > 25,000
        Assert.True(new StepVerdict(15_000, 10_000, 25_000).Reachable);
        Assert.Equal(4.0, new StepVerdict(15_000, 10_000, 25_000).BestRatio(100_000), 9);
        // a setting with no measured rate cannot be reached
        Assert.True(double.IsPositiveInfinity(StepVerdict.Floor([body], _ => 0)));
    }

    [Fact]
    public void Model_json_scales_the_measured_step_by_the_profiles_share_outside_matmulnbits_and_judges_both_rates()
    {
        var shapes = new List<MatMulNBitsShape> { new(4, 32, 4, false, 1000, 2000, 10), new(8, 32, 4, false, 1000, 5000, 1) };
        // 20,000,000 + 5,000,000 weights per step
        var m = new CeilingModel("int4-b32", shapes, 4.0, StepMicroseconds: 9_000, ProfileRunMicroseconds: 12_000, ProfileMatMulNBitsMicroseconds: 7_000, RestFrom: "int4");
        var json = KernelCeilingBench.ModelJson(m, fp32StepMicroseconds: 40_000,
            residentRate: s => s.Bits == 4 ? 10e9 : 5e9, streamedRate: s => s.Bits == 4 ? 4e9 : 2.5e9);
        Assert.Equal(11, json["matmulnbits_nodes"]);
        Assert.Equal(25_000_000L, json["matmulnbits_weights_per_step"]);
        Assert.Equal(3_750.0, json["rest_microseconds"]); // 9,000 x (12,000 - 7,000) / 12,000
        Assert.Equal(5_000.0, json["profile_rest_microseconds"]);
        Assert.Equal(3_000.0, json["floor_resident_microseconds"]); // 2,000 + 1,000
        Assert.Equal(7_000.0, json["floor_streamed_microseconds"]); // 5,000 + 2,000
        Assert.Equal(10_000.0, json["needed_step_microseconds"]);
        Assert.Equal(6_750.0, json["step_at_resident_rate_microseconds"]);
        Assert.Equal(10_750.0, json["step_at_streamed_rate_microseconds"]);
        Assert.Equal(Math.Round(40_000 / 6_750.0, 3), json["best_over_fp32"]);
        Assert.Equal(Math.Round(40_000 / 10_750.0, 3), json["streamed_over_fp32"]);
        Assert.Equal(true, json["reachable_by_kernels"]);
        Assert.Equal(false, json["reachable_at_streamed_rate"]); // 10,750 > 10,000
        Assert.Equal("int4", json["rest_from"]);
        var slow = KernelCeilingBench.ModelJson(m, 40_000, _ => 1e9, _ => 1e9);
        Assert.Equal(false, slow["reachable_by_kernels"]); // 25,000 + 3,750 > 10,000
    }

    [Fact]
    public void Profile_figures_sum_every_matmulnbits_entry()
    {
        var profile = new Dictionary<string, object?>
        {
            ["run_microseconds_per_step"] = 1500.5,
            ["operators"] = new List<Dictionary<string, object?>>
            {
                new() { ["op"] = "MatMulNBits", ["provider"] = "CPUExecutionProvider", ["microseconds_per_step"] = 1000.0 },
                new() { ["op"] = "Concat", ["provider"] = "CPUExecutionProvider", ["microseconds_per_step"] = 200.0 },
                new() { ["op"] = "MatMulNBits", ["provider"] = "OtherExecutionProvider", ["microseconds_per_step"] = 50.0 },
            },
        };
        Assert.Equal((1500.5, 1050.0), CeilingModel.FromProfile(profile));
    }
}
