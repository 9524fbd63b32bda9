using System.Text.Json;
using Peft.Onnx.Core;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.Families;
using Peft.Onnx.Core.Onnx;
using Peft.Onnx.Core.SafeTensors;
using Peft.Onnx.Exporter;
using Peft.Onnx.Exporter.Graphs;
using Peft.Onnx.Exporter.Onnx;
using Peft.Onnx.Exporter.Onnx.Proto;
using Peft.Onnx.Exporter.Passes;
using Peft.Onnx.Runtime;
using Peft.Onnx.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace Peft.Onnx.Tests.Exporter;

/// <summary>
/// Base + PEFT adapter compiled to ONNX against real PEFT 0.7.1 (fixtures): merged LoRA / IA3 exports against
/// merge_and_unload's logits and generations, unmerged LoRA (side branches) against the adapted model, misfit
/// adapters refused before anything is written, fp16 exports with a looser tolerance.
/// </summary>
public class MergeExportTests(ITestOutputHelper output)
{
    public static TheoryData<string, string> MergedCases()
    {
        var data = new TheoryData<string, string>();
        foreach (var arch in Paths.Archs)
            foreach (var method in new[] { "lora", "lora_all", "ia3" }) data.Add(arch, method);
        return data;
    }

    [Theory]
    [MemberData(nameof(MergedCases))]
    public void Merged_export_matches_peft_merge_and_unload(string arch, string method)
    {
        var dir = TempExports.Adapted(arch, method, new ExportOptions());
        try
        {
            var meta = Reference.Meta(arch, method);
            var (diff, generated) = AdapterExportParity.Run(arch, method, dir, "logits_merged", Reference.Rows(meta.GetProperty("generated_merged"))[0].Length);
            output.WriteLine($"{arch}/{method} merged: max |logit diff| vs logits_merged = {diff:g3}");
            Assert.Equal(Reference.Rows(meta.GetProperty("generated_merged"))[0], generated);
            Assert.Equal(Reference.Rows(meta.GetProperty("generated"))[0], generated);
        }
        finally { Directory.Delete(dir, true); }
    }
}

/// <summary>LoRA left unmerged (--no-merge): side branches against the adapted model, and against the merged export for options the fixtures lack.</summary>
public class MergeUnmergedLoraTests(ITestOutputHelper output)
{
    public static TheoryData<string, string> UnmergedCases()
    {
        var data = new TheoryData<string, string>();
        foreach (var arch in Paths.Archs)
            foreach (var method in new[] { "lora", "lora_all" }) data.Add(arch, method);
        return data;
    }

    [Theory]
    [MemberData(nameof(UnmergedCases))]
    public void Unmerged_lora_export_matches_the_adapted_model(string arch, string method)
    {
        var dir = TempExports.Adapted(arch, method, new ExportOptions { Merge = false });
        try
        {
            var meta = Reference.Meta(arch, method);
            var (diff, generated) = AdapterExportParity.Run(arch, method, dir, "logits", Reference.Rows(meta.GetProperty("generated"))[0].Length);
            output.WriteLine($"{arch}/{method} unmerged: max |logit diff| vs logits = {diff:g3}");
            Assert.Equal(Reference.Rows(meta.GetProperty("generated"))[0], generated);

            // the base weights are the checkpoint's; A, B and the scaling are initializers named after each module
            using var adapter = AdapterWeights.Open(Paths.Case(arch, method + "/adapter"));
            var config = (Peft.Onnx.Core.Peft.LoraConfig)adapter.Config;
            var target = config.FindTargets(Peft.Onnx.Core.Architectures.Architecture.For(ModelConfig.Load(Paths.Case(arch, "base_model"))))[0];
            var file = arch is "t5" or "mt5" ? (target.Path.StartsWith("encoder.", StringComparison.Ordinal) ? "encoder_model.onnx" : "decoder_model.onnx") : CausalLmContract.ModelFile;
            var model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(Path.Combine(dir, file)));
            var initializers = model.Graph.Initializer.ToDictionary(t => t.Name);
            Assert.Equal([target.Linear.InFeatures, target.Rank], initializers[LoraBranches.AName(target.Path)].Dims);
            Assert.Equal([target.Rank, target.Linear.OutFeatures], initializers[LoraBranches.BName(target.Path)].Dims);
            Assert.Contains(LoraBranches.ScalingName(target.Path), initializers.Keys);
            Assert.Contains(model.Graph.Node, n => n.Name.EndsWith("/lora_B/MatMul", StringComparison.Ordinal));
        }
        finally { Directory.Delete(dir, true); }
    }

    [Theory]
    [InlineData("gpt2", "{\"use_rslora\": true, \"alpha_pattern\": {\"h.1.attn.c_attn\": 32}}")]
    [InlineData("llama", "{\"rank_pattern\": {\"v_proj\": 2}, \"alpha_pattern\": {\"v_proj\": 3}, \"layers_to_transform\": [1]}")]
    public void Lora_options_merge_like_the_unmerged_branches(string arch, string overrides)
    {
        var adapter = Paths.TempDir("peft-onnx-lora-options");
        string? merged = null, unmerged = null;
        try
        {
            var config = JsonFiles.ReadObject(Paths.Case(arch, "lora/adapter/adapter_config.json"));
            foreach (var (k, v) in System.Text.Json.Nodes.JsonNode.Parse(overrides)!.AsObject().ToList()) config[k] = v?.DeepClone();
            File.WriteAllText(Path.Combine(adapter, "adapter_config.json"), config.ToJsonString());
            var parsed = (Peft.Onnx.Core.Peft.LoraConfig)Peft.Onnx.Core.Peft.AdapterConfig.Load(adapter);
            var targets = parsed.FindTargets(Peft.Onnx.Core.Architectures.Architecture.For(ModelConfig.Load(Paths.Case(arch, "base_model"))));
            using (var lora = SafeTensorsFile.Open(Paths.Case(arch, "lora/adapter/adapter_model.safetensors")))
            {
                var tensors = new List<TensorData>();
                foreach (var t in targets)
                {
                    var aKey = AdapterFormat.LoraAKey(t.Path);
                    var bKey = AdapterFormat.LoraBKey(t.Path);
                    int r0 = (int)lora[aKey].Shape[0], inF = (int)lora[aKey].Shape[1], outF = (int)lora[bKey].Shape[0];
                    var av = lora.ReadFloat32(aKey);
                    var bv = lora.ReadFloat32(bKey);
                    tensors.Add(TensorData.FromFloat32(aKey, [t.Rank, inF], av[..(t.Rank * inF)]));
                    tensors.Add(TensorData.FromFloat32(bKey, [outF, t.Rank], Enumerable.Range(0, outF * t.Rank).Select(i => bv[i / t.Rank * r0 + i % t.Rank]).ToArray()));
                }
                SafeTensorsWriter.Write(Path.Combine(adapter, AdapterFormat.WeightsFile), tensors);
            }
            merged = TempExports.FreshPath();
            OnnxExport.Export(Paths.Case(arch, "base_model"), adapter, merged, new ExportOptions());
            unmerged = TempExports.FreshPath();
            OnnxExport.Export(Paths.Case(arch, "base_model"), adapter, unmerged, new ExportOptions { Merge = false });
            var (lm, lu) = (AdapterExportParity.FixtureLogits(arch, merged), AdapterExportParity.FixtureLogits(arch, unmerged));
            using var reference = new Reference(arch);
            var rows = Tolerance.RowsFromMask(reference.Inputs.ReadInt64("attention_mask"));
            Tolerance.AssertLogits(lu, lm, 1000, rows, "merged vs unmerged");
            using var baseRef = SafeTensorsFile.Open(Path.Combine(Paths.Case(arch), "base_reference.safetensors"));
            output.WriteLine($"{arch} {overrides}: {targets.Count} targets, |adapted - base| = {DecoderExportChecks.MaxDiff(baseRef.ReadFloat32("logits"), lm, 1000, rows):g3}");
            Assert.True(DecoderExportChecks.MaxDiff(baseRef.ReadFloat32("logits"), lm, 1000, rows) > 1e-3, "the adapter changed nothing");
        }
        finally
        {
            Directory.Delete(adapter, true);
            if (merged != null) Directory.Delete(merged, true);
            if (unmerged != null) Directory.Delete(unmerged, true);
        }
    }

}

/// <summary>Adapters that do not fit the base are refused before anything is written; modules_to_save and the Conv1D layout.</summary>
public class MergeAdapterFitTests(ITestOutputHelper output)
{
    [Fact]
    public void Adapter_for_another_family_is_refused_and_nothing_is_written()
    {
        var dir = TempExports.FreshPath();
        var ex = Assert.Throws<PeftOnnxException>(() => OnnxExport.Export(Paths.Case("gpt2", "base_model"), Paths.Case("bloom", "lora/adapter"), dir, new ExportOptions()));
        output.WriteLine(ex.Message);
        Assert.Contains("query_key_value", ex.Message);
        TempExports.AssertNothingWritten(dir);
    }

    [Fact]
    public void Adapter_whose_tensors_do_not_exist_in_the_base_is_refused_naming_the_tensor()
    {
        // OPT's q_proj/v_proj names match LLaMA's modules, but the paths (model.decoder.layers vs model.layers) do not
        var dir = TempExports.FreshPath();
        var ex = Assert.Throws<PeftOnnxException>(() => OnnxExport.Export(Paths.Case("llama", "base_model"), Paths.Case("opt", "lora/adapter"), dir, new ExportOptions()));
        output.WriteLine(ex.Message);
        Assert.Contains("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", ex.Message);
        Assert.Contains("[4, 64]", ex.Message);
        TempExports.AssertNothingWritten(dir);
    }

    [Fact]
    public void Adapter_with_wrong_shapes_is_refused_naming_the_tensor_and_both_shapes()
    {
        var adapter = Paths.TempDir("peft-onnx-bad-adapter");
        var dir = TempExports.FreshPath();
        try
        {
            File.Copy(Paths.Case("gpt2", "lora/adapter/adapter_model.safetensors"), Path.Combine(adapter, AdapterFormat.WeightsFile));
            var json = File.ReadAllText(Paths.Case("gpt2", "lora/adapter/adapter_config.json")).Replace("\"r\": 4", "\"r\": 2");
            File.WriteAllText(Path.Combine(adapter, "adapter_config.json"), json);
            var ex = Assert.Throws<PeftOnnxException>(() => OnnxExport.Export(Paths.Case("gpt2", "base_model"), adapter, dir, new ExportOptions()));
            output.WriteLine(ex.Message);
            Assert.Contains("'base_model.model.transformer.h.0.attn.c_attn.lora_A.weight'", ex.Message);
            Assert.Contains("[4, 64]", ex.Message);
            Assert.Contains("[2, 64]", ex.Message);
            TempExports.AssertNothingWritten(dir);
        }
        finally { Directory.Delete(adapter, true); }
    }

    [Fact]
    public void Ia3_cannot_be_left_unmerged()
    {
        var dir = TempExports.FreshPath();
        var ex = Assert.Throws<PeftOnnxException>(() => OnnxExport.Export(Paths.Case("opt", "base_model"), Paths.Case("opt", "ia3/adapter"), dir, new ExportOptions { Merge = false }));
        Assert.Contains("LoRA", ex.Message);
        TempExports.AssertNothingWritten(dir);
    }

    [Fact]
    public void Lora_merge_follows_the_conv1d_layout()
    {
        // w [out=2, in=3] as nn.Linear, and the same matrix stored [in, out] as Conv1D: the same delta lands on both
        float[] a = [1, 2, 3, 4, 5, 6];           // [r=2, in=3]
        float[] b = [1, 0, 0.5f, -1];             // [out=2, r=2]
        var linear = new float[6];
        var conv = new float[6];
        MergeLora.AddDelta(linear, a, b, 2, 3, 2, 2.0, conv1D: false);
        MergeLora.AddDelta(conv, a, b, 2, 3, 2, 2.0, conv1D: true);
        float[] expected = [2, 4, 6, -7, -8, -9];  // 2 * (B @ A) = 2 * [[1, 2, 3], [-3.5, -4, -4.5]]
        Assert.Equal(expected, linear);
        for (int o = 0; o < 2; o++)
            for (int i = 0; i < 3; i++) Assert.Equal(expected[o * 3 + i], conv[i * 2 + o]);
    }

    [Fact]
    public void Modules_to_save_copies_and_trained_biases_replace_the_base_weights()
    {
        // PEFT saves a modules_to_save copy under the base parameter's own name ("base_model.model.{name}") and, with
        // bias = "all", a wrapped module's bias as "{path}.base_layer.bias": exporting that adapter must equal exporting
        // the plain LoRA adapter over a base whose tensors were replaced by hand.
        var arch = "opt";
        var adapter = Paths.TempDir("peft-onnx-mts-adapter");
        var changedBase = Paths.TempDir("peft-onnx-mts-base");
        string? a = null, b = null;
        try
        {
            var changed = new Dictionary<string, float[]>();
            using (var baseFile = SafeTensorsFile.Open(Path.Combine(Paths.Case(arch, "base_model"), "model.safetensors")))
            {
                foreach (var name in baseFile.Names.Where(n => n.Contains(".fc2.") || n == "model.decoder.layers.0.self_attn.q_proj.bias"))
                    changed[name] = baseFile.ReadFloat32(name).Select((v, i) => v * 1.5f + 0.01f * (i % 7)).ToArray();
                SafeTensorsWriter.Write(Path.Combine(changedBase, "model.safetensors"),
                    baseFile.Names.Select(n => TensorData.FromFloat32(n, baseFile[n].Shape, changed.TryGetValue(n, out var c) ? c : baseFile.ReadFloat32(n))));
                foreach (var f in Directory.EnumerateFiles(Paths.Case(arch, "base_model")).Where(f => !f.EndsWith(".safetensors")))
                    File.Copy(f, Path.Combine(changedBase, Path.GetFileName(f)));

                using var lora = SafeTensorsFile.Open(Paths.Case(arch, "lora/adapter/adapter_model.safetensors"));
                var tensors = lora.Names.Select(n => TensorData.FromFloat32(n, lora[n].Shape, lora.ReadFloat32(n))).ToList();
                foreach (var (name, values) in changed)
                {
                    var key = name == "model.decoder.layers.0.self_attn.q_proj.bias" ? "base_model.model.model.decoder.layers.0.self_attn.q_proj.base_layer.bias" : "base_model.model." + name;
                    tensors.Add(TensorData.FromFloat32(key, baseFile[name].Shape, values));
                    if (name.EndsWith(".fc2.bias", StringComparison.Ordinal))
                    {
                        // what PEFT's bias = "all" also writes inside a modules_to_save module (never loaded back)
                        var module = "base_model.model." + name[..^".bias".Length];
                        tensors.Add(TensorData.FromFloat32(module + ".original_module.bias", baseFile[name].Shape, baseFile.ReadFloat32(name)));
                        tensors.Add(TensorData.FromFloat32(module + ".modules_to_save.bias", baseFile[name].Shape, values));
                    }
                }
                SafeTensorsWriter.Write(Path.Combine(adapter, AdapterFormat.WeightsFile), tensors);
            }
            var config = JsonFiles.ReadObject(Paths.Case(arch, "lora/adapter/adapter_config.json"));
            config["modules_to_save"] = new System.Text.Json.Nodes.JsonArray("fc2");
            config["bias"] = "all";
            File.WriteAllText(Path.Combine(adapter, "adapter_config.json"), config.ToJsonString());

            a = TempExports.FreshPath();
            OnnxExport.Export(Paths.Case(arch, "base_model"), adapter, a, new ExportOptions());
            b = TempExports.FreshPath();
            OnnxExport.Export(changedBase, Paths.Case(arch, "lora/adapter"), b, new ExportOptions());
            var (la, lb) = (AdapterExportParity.FixtureLogits(arch, a), AdapterExportParity.FixtureLogits(arch, b));
            Assert.Equal(lb, la);
            var reference = SafeTensorsFile.Open(Path.Combine(Paths.Case(arch, "lora"), "reference.safetensors")).ReadFloat32("logits_merged");
            Assert.True(DecoderExportChecks.MaxDiff(reference, la, 1000, null) > 1e-2, "the saved modules changed nothing");
        }
        finally
        {
            Directory.Delete(adapter, true);
            Directory.Delete(changedBase, true);
            if (a != null) Directory.Delete(a, true);
            if (b != null) Directory.Delete(b, true);
        }
    }

    /// <summary>
    /// rsLoRA, rank_pattern / alpha_pattern and layers_to_transform, which the fixtures do not cover: the merged weights
    /// and the unmerged branches (two independent code paths) agree, and the adapter changes the logits.
    /// </summary>
}

/// <summary>export --dtype fp16: float16 weights, compute and cache, float32 logits; parity with a looser tolerance.</summary>
public class MergeFp16ExportTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData("gpt2", "lora")]
    [InlineData("llama", "lora_all")]
    [InlineData("t5", "ia3")]
    public void Fp16_export_matches_with_a_looser_tolerance(string arch, string method)
    {
        var dir = TempExports.Adapted(arch, method, new ExportOptions { DType = ExportDType.Fp16 });
        try
        {
            var model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(Path.Combine(dir, arch is "t5" or "mt5" ? "decoder_model.onnx" : CausalLmContract.ModelFile)));
            Assert.All(model.Graph.Initializer.Where(t => t.DataType is 1 or 10 && t.Dims.Count >= 2), t => Assert.Equal(10, t.DataType)); // weights are float16
            Assert.Equal(1, model.Graph.Output.First(o => o.Name == "logits").Type.TensorType.ElemType);                             // logits float32
            Assert.All(model.Graph.Output.Where(o => o.Name.StartsWith("present.", StringComparison.Ordinal)), o => Assert.Equal(10, o.Type.TensorType.ElemType));
            Assert.All(model.Graph.Input.Where(i => i.Name.Contains("_ids") || i.Name.Contains("mask")), i => Assert.Equal(7, i.Type.TensorType.ElemType));

            using var reference = new Reference(arch);
            using var expected = SafeTensorsFile.Open(Path.Combine(Paths.Case(arch, method), "reference.safetensors"));
            var ids = reference.Inputs.ReadInt64("input_ids");
            var mask = reference.Inputs.ReadInt64("attention_mask");
            var labels = reference.Inputs.ReadInt64("labels");
            int batch = (int)reference.Shape("input_ids")[0];
            using var forward = LogitsForward.Open(dir);
            float[] logits;
            bool[] rows;
            if (forward.IsEncoderDecoder)
            {
                var config = (T5Config)ModelConfig.Load(Paths.Case(arch, "base_model"));
                logits = forward.Seq2Seq(ids, mask, Seq2SeqForward.ShiftRight(labels, batch, config.DecoderStartId, config.PadTokenId ?? 0), batch);
                rows = labels.Select(l => l != -100).ToArray();
            }
            else
            {
                logits = forward.Causal(ids, mask, batch);
                rows = Tolerance.RowsFromMask(mask);
            }
            var reference32 = expected.ReadFloat32("logits_merged");
            double mean = reference32.Average(v => (double)v);
            double std = Math.Sqrt(reference32.Average(v => (v - mean) * (v - mean)));
            double tol = 1e-2 * Math.Max(1, std);
            int vocab = forward.VocabSize;
            double worst = reference32.Select((e, i) => rows[i / vocab] ? Math.Abs(e - logits[i]) : 0).Max();
            output.WriteLine($"{arch}/{method} fp16: max |logit diff| = {worst:g3} (tolerance {tol:g3})");
            Assert.True(worst <= tol, $"fp16 logits differ by {worst:g4} > {tol:g4}");

            // greedy generation (recomputed from scratch each step) picks the same tokens
            if (forward.IsEncoderDecoder)
            {
                var config = (T5Config)ModelConfig.Load(Paths.Case(arch, "base_model"));
                var expectedIds = Reference.Rows(Reference.Meta(arch, method).GetProperty("generated_merged"))[0];
                var prompt = reference.Inputs.ReadInt64("gen_input_ids");
                var decoded = new List<long> { config.DecoderStartId };
                while (decoded.Count < expectedIds.Length && !config.EosTokenId!.Contains((int)decoded[^1]))
                {
                    var l = forward.Seq2Seq(prompt, Enumerable.Repeat(1L, prompt.Length).ToArray(), [.. decoded], 1);
                    var last = l.AsSpan(l.Length - vocab, vocab);
                    int next = 0;
                    for (int v = 1; v < vocab; v++) if (last[v] > last[next]) next = v;
                    decoded.Add(next);
                }
                Assert.Equal(expectedIds, decoded);
            }
            else
            {
                var meta = Reference.Meta(arch, method);
                var expectedIds = Reference.Rows(meta.GetProperty("generated_merged"))[0];
                var sequence = reference.Inputs.ReadInt64("gen_input_ids").ToList();
                while (sequence.Count < expectedIds.Length)
                {
                    var l = forward.Causal([.. sequence], Enumerable.Repeat(1L, sequence.Count).ToArray(), 1);
                    var last = l.AsSpan(l.Length - vocab, vocab);
                    int next = 0;
                    for (int v = 1; v < vocab; v++) if (last[v] > last[next]) next = v;
                    sequence.Add(next);
                }
                Assert.Equal(expectedIds, sequence);
            }
        }
        finally { Directory.Delete(dir, true); }
    }

}
