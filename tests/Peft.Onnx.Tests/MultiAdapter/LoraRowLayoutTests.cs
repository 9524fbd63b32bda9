using System.Text.Json.Nodes;
using Peft.Onnx.Core;
using Peft.Onnx.Core.Onnx;
using Peft.Onnx.Exporter;
using Peft.Onnx.Runtime;
using Peft.Onnx.Runtime.Adapters;
using Peft.Onnx.Tests.Support;
using Xunit;

namespace Peft.Onnx.Tests.MultiAdapter;

/// <summary>
/// The LoRA row layout of multi-adapter exports (no base slot, no rank padding): it computes what the padded gather layout
/// computes, adapters.json says which layout a folder holds, and run-time adds and removes move exactly the rows they own.
/// </summary>
public class LoraRowLayoutTests
{
    [Fact]
    public void The_row_and_gather_layouts_give_the_same_logits_in_a_mixed_batch()
    {
        var adapters = MultiAdapterExportTests.Adapters("bloom");
        var rows = MultiAdapterExportTests.MultiExport("bloom");
        var gather = TempExports.FreshPath();
        try
        {
            MultiAdapterExport.Export(Paths.Case("bloom", "base_model"), adapters.Select(a => new NamedAdapter(a.Name, a.Dir)).ToList(), gather, new ExportOptions(), LoraStackLayout.Gather);
            Assert.Equal(LoraStackLayout.Rows, AdapterManifest.Load(rows)!.LoraLayout);
            Assert.Equal(LoraStackLayout.Gather, AdapterManifest.Load(gather)!.LoraLayout);
            Assert.Empty(AdapterManifest.Load(gather)!.RowTableUsers);
            // the gather layout pads every adapter to the largest rank and keeps a zero base slot: more bytes for the same adapters
            Assert.True(DataBytes(gather) > DataBytes(rows));

            string?[] names = ["plain", null, "dora", "all_linear", "ia3", "with_bias", "plain"];
            GenerationRequest Request() => new()
            {
                InputIds = names.Select((_, i) => Enumerable.Range(0, 2 + i % 4).Select(t => 3 + (i * 7 + t * 5) % 40).ToArray()).ToArray(),
                Adapters = names,
                Options = GenerationOptions.Greedy(4),
            };
            using var rowModel = OnnxModel.Load(rows, DeviceOptions.Cpu);
            using var gatherModel = OnnxModel.Load(gather, DeviceOptions.Cpu);
            using var a = rowModel.CreateGenerator(Request());
            using var b = gatherModel.CreateGenerator(Request());
            while (!b.IsDone)
            {
                a.GenerateNextToken();
                b.GenerateNextToken();
                for (int r = 0; r < names.Length; r++)
                    Tolerance.AssertLogits(b.Session.Logits(r).ToArray(), a.Session.Logits(r).ToArray(), rowModel.VocabSize, what: $"step {b.Step} row {r} ({names[r] ?? "base"})");
            }
            Assert.Equal(b.GetNewTokens(), a.GetNewTokens());
        }
        finally
        {
            if (Directory.Exists(gather)) Directory.Delete(gather, true);
        }
    }

    private static long DataBytes(string dir) => new FileInfo(Path.Combine(dir, CausalLmContract.DataFile)).Length;

    [Fact]
    public void The_manifest_keeps_the_layout_and_index_tables_and_refuses_an_unknown_layout()
    {
        var dir = TempExports.FreshPath();
        Directory.CreateDirectory(dir);
        try
        {
            var manifest = new AdapterManifest([new AdapterManifestEntry("a", "LORA", 4, 10, null)])
            {
                LoraLayout = LoraStackLayout.Rows,
                RowTableUsers = new Dictionary<string, IReadOnlyList<string>> { ["m0.lora_rows.stacked"] = ["m0", "m1"] },
                Stacks = [new AdapterStackTensor("m0.lora_rows.stacked", CausalLmContract.DataFile, 0, 32, [2, 4])],
            };
            var path = Path.Combine(dir, AdapterManifest.FileName);
            File.WriteAllText(path, manifest.ToJson());
            var read = AdapterManifest.Load(dir)!;
            Assert.Equal(LoraStackLayout.Rows, read.LoraLayout);
            Assert.Equal(["m0", "m1"], read.RowTableUsers["m0.lora_rows.stacked"]);

            // written before the layouts were named: the gather layout
            var old = JsonNode.Parse(manifest.ToJson())!.AsObject();
            old.Remove("lora_layout");
            old.Remove("lora_row_tables");
            File.WriteAllText(path, old.ToJsonString());
            Assert.Equal(LoraStackLayout.Gather, AdapterManifest.Load(dir)!.LoraLayout);

            old["lora_layout"] = "diagonal";
            File.WriteAllText(path, old.ToJsonString());
            var error = Assert.Throws<PeftOnnxException>(() => AdapterManifest.Load(dir));
            Assert.Equal($"{path}: \"lora_layout\" is 'diagonal', expected \"rows\" or \"gather\"", error.Message);
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void Adding_appends_an_adapters_rows_and_removing_drops_them_and_renumbers_the_rest()
    {
        // two modules sharing one table: slot 0 rank 2, slot 1 rank 1 (module m1 has no rank-1 block of its own: it got a zero row)
        var table = new StackBuffer([1, 2, 3, 0, 0, 0], [3, 2]);
        var a0 = new StackBuffer([0, 0, 1, 1, 2, 2, 3, 3], [4, 2]); // [rows, in = 2]
        var b0 = new StackBuffer([0, 0, 0, 10, 20, 30, 40, 50, 60, 70, 80, 90], [4, 3]); // [rows, out = 3]
        var a1 = new StackBuffer([0, 0, 5, 5, 6, 6, 0, 0], [4, 2]);
        var b1 = new StackBuffer([0, 0, 0, 1, 1, 1, 2, 2, 2, 0, 0, 0], [4, 3]);
        var old = new Dictionary<string, StackBuffer>
        {
            ["m0.lora_rows.stacked"] = table,
            ["m0.lora_A.stacked"] = a0, ["m0.lora_B.stacked"] = b0,
            ["m1.lora_A.stacked"] = a1, ["m1.lora_B.stacked"] = b1,
        };
        var tables = new Dictionary<string, IReadOnlyList<string>> { ["m0.lora_rows.stacked"] = ["m0", "m1"] };

        // a rank-3 adapter on m0 only, into a new slot 2: A given transposed [in, r], B^T [r, out]
        var added = new Dictionary<string, StackBuffer>();
        RowStackGrowth.Add(added, old, tables, slots: 3, oldSlots: 2, slot: 2, new Dictionary<string, StackRow>
        {
            ["m0.lora_A.stacked"] = new([7, 8, 9, 17, 18, 19], 3),
            ["m0.lora_B.stacked"] = new([1, 2, 3, 4, 5, 6, 7, 8, 9], 3),
        });
        Assert.Equal(new long[] { 4, 3 }, added["m0.lora_rows.stacked"].Dims);
        Assert.Equal(new float[] { 1, 2, 0, 3, 0, 0, 4, 5, 6, 0, 0, 0 }, added["m0.lora_rows.stacked"].Values);
        Assert.Equal(new float[] { 0, 0, 1, 1, 2, 2, 3, 3, 7, 17, 8, 18, 9, 19 }, added["m0.lora_A.stacked"].Values);
        Assert.Equal(new long[] { 7, 3 }, added["m0.lora_B.stacked"].Dims);
        Assert.Equal(b0.Values.Concat([1, 2, 3, 4, 5, 6, 7, 8, 9]), added["m0.lora_B.stacked"].Values);
        Assert.Equal(a1.Values.Concat(new float[6]), added["m1.lora_A.stacked"].Values); // zero rows keep m1 aligned

        // removing slot 0 drops rows 1 and 2; rows 3..6 become 1..4
        var removed = new Dictionary<string, StackBuffer>();
        RowStackGrowth.Remove(removed, added, tables, slot: 0);
        Assert.Equal(new long[] { 4, 3 }, removed["m0.lora_rows.stacked"].Dims);
        Assert.Equal(new float[] { 0, 0, 0, 1, 0, 0, 2, 3, 4, 0, 0, 0 }, removed["m0.lora_rows.stacked"].Values);
        Assert.Equal(new float[] { 0, 0, 3, 3, 7, 17, 8, 18, 9, 19 }, removed["m0.lora_A.stacked"].Values);
        Assert.Equal(new long[] { 5, 3 }, removed["m0.lora_B.stacked"].Dims);
        Assert.Equal(new float[10], removed["m1.lora_A.stacked"].Values);
    }
}
