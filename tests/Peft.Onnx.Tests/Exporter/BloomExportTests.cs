using static Peft.Onnx.Tests.Support.BatchSlices;
using Peft.Onnx.Core;
using Peft.Onnx.Core.SafeTensors;
using Peft.Onnx.Exporter;
using Peft.Onnx.Exporter.Onnx;
using Peft.Onnx.Exporter.Onnx.Proto;
using Peft.Onnx.Tests.Support;
using Xunit;
using Xunit.Abstractions;
using Peft.Onnx.Core.Onnx;
using Peft.Onnx.Runtime;

namespace Peft.Onnx.Tests.Exporter;

/// <summary>The exported BLOOM graph against transformers 4.33 (fixture) and against itself (cache vs no cache).</summary>
public class BloomExportTests(ITestOutputHelper output)
{
    [Fact]
    public void Fixture_logits_match_transformers()
    {
        var dir = TempExports.Base(Paths.Case("bloom", "base_model"));
        try
        {
            using var reference = new Reference("bloom");
            using var expected = SafeTensorsFile.Open(Path.Combine(Paths.Case("bloom"), "base_reference.safetensors"));
            var ids = reference.Inputs.ReadInt64("input_ids");
            var mask = reference.Inputs.ReadInt64("attention_mask");
            var batch = (int)reference.Shape("input_ids")[0];

            using var runner = CausalLmForward.Open(Path.Combine(dir, CausalLmContract.ModelFile));
            var step = runner.Run(ids, mask, batch);

            Assert.Equal(expected["logits"].Shape, step.LogitsShape);
            var reference32 = expected.ReadFloat32("logits");
            var rows = Tolerance.RowsFromMask(mask);
            var maxDiff = reference32.Select((e, i) => rows[i / runner.VocabSize] ? Math.Abs(e - step.Logits[i]) : 0f).Max();
            output.WriteLine($"bloom fixture: max |logit diff| on real tokens = {maxDiff:g3}");
            Tolerance.AssertLogits(reference32, step.Logits, runner.VocabSize, rows, "bloom onnx logits");
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void Fixture_greedy_generation_with_kv_cache_matches_transformers()
    {
        var dir = TempExports.Base(Paths.Case("bloom", "base_model"));
        try
        {
            using var reference = new Reference("bloom");
            var expected = Reference.Rows(reference.BaseMeta.GetProperty("generated"))[0];
            var prompt = reference.Inputs.ReadInt64("gen_input_ids");
            using var runner = CausalLmForward.Open(Path.Combine(dir, CausalLmContract.ModelFile));
            var generated = OnnxGreedy.Generate(runner, prompt, expected.Length - prompt.Length, eos: 1);
            Assert.Equal(expected, generated);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void Export_is_deterministic_and_writes_a_self_contained_folder()
    {
        var a = TempExports.Base(Paths.Case("bloom", "base_model"));
        var b = TempExports.Base(Paths.Case("bloom", "base_model"));
        try
        {
            foreach (var f in new[] { CausalLmContract.ModelFile, CausalLmContract.DataFile, "config.json", "generation_config.json" })
                Assert.Equal(File.ReadAllBytes(Path.Combine(a, f)), File.ReadAllBytes(Path.Combine(b, f)));
            Assert.Empty(Directory.GetDirectories(Path.GetDirectoryName(a)!, $".{Path.GetFileName(a)}.*"));
        }
        finally
        {
            Directory.Delete(a, true);
            Directory.Delete(b, true);
        }
    }

    [Fact]
    public void Export_refuses_a_non_empty_folder()
    {
        var dir = Paths.TempDir("peft-onnx-export");
        try
        {
            File.WriteAllText(Path.Combine(dir, "keep.txt"), "x");
            var ex = Assert.Throws<PeftOnnxException>(() => OnnxExport.ExportBase(Paths.Case("bloom", "base_model"), dir));
            Assert.Contains("not empty", ex.Message);
            Assert.Equal(["keep.txt"], Directory.GetFileSystemEntries(dir).Select(Path.GetFileName));
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void A_truncated_checkpoint_is_refused_and_leaves_no_folder()
    {
        var model = Paths.TempDir();
        File.Copy(Path.Combine(Paths.Case("bloom", "base_model"), "config.json"), Path.Combine(model, "config.json"));
        var weights = File.ReadAllBytes(Path.Combine(Paths.Case("bloom", "base_model"), "model.safetensors"));
        File.WriteAllBytes(Path.Combine(model, "model.safetensors"), weights[..(weights.Length / 3)]);
        var dir = Path.Combine(Path.GetTempPath(), $"peft-onnx-export-{Guid.NewGuid():N}");
        var ex = Assert.Throws<PeftOnnxException>(() => OnnxExport.ExportBase(model, dir));
        Assert.Contains("model.safetensors", ex.Message);
        Assert.False(Directory.Exists(dir));
        Assert.Empty(Directory.GetDirectories(Path.GetTempPath(), $".{Path.GetFileName(dir)}.*"));
    }

    [Fact]
    public void Tiny_bloom_fin_exports_and_cached_decoding_equals_full_prefill()
    {
        var dir = TempExports.Base(Path.Combine(Paths.Models, "tiny-bloom-fin"));
        try
        {
            foreach (var f in new[] { "tokenizer.json", "vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json", "config.json", "generation_config.json" })
                Assert.True(File.Exists(Path.Combine(dir, f)), f);

            using var runner = CausalLmForward.Open(Path.Combine(dir, CausalLmContract.ModelFile));
            Assert.Equal((4, 4, 64, 4000), (runner.NumLayers, runner.NumHeads, runner.HeadDim, runner.VocabSize));
            const int batch = 2, total = 9, prefix = 5;
            long[] ids = [1, 654, 105, 1609, 114, 396, 273, 554, 356, /**/ 1, 356, 1692, 20, 31, 99, 3000, 12, 7];
            var full = runner.Run(ids, Ones(batch * total), batch);
            Assert.Equal([batch, total, 4000], full.LogitsShape);
            Assert.All(full.Logits, v => Assert.True(float.IsFinite(v)));

            // prefill the first 5 tokens, then feed the rest one at a time through the cache
            var step = runner.Run(Columns(ids, batch, total, 0, prefix), Ones(batch * prefix), batch);
            AssertPositions(full.Logits, step.Logits, batch, total, 0, prefix, runner.VocabSize);
            for (int t = prefix; t < total; t++)
            {
                step = runner.Run(Columns(ids, batch, total, t, t + 1), Ones(batch * (t + 1)), batch, step.Present);
                Assert.Equal([batch, 1, 4000], step.LogitsShape);
                AssertPositions(full.Logits, step.Logits, batch, total, t, t + 1, runner.VocabSize);
            }
            Assert.Equal(total, step.Present.Length);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void Graph_uses_module_path_node_names_and_hf_initializer_names()
    {
        var dir = TempExports.Base(Paths.Case("bloom", "base_model"));
        try
        {
            var model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(Path.Combine(dir, CausalLmContract.ModelFile)));
            var nodes = model.Graph.Node.Select(n => n.Name).ToHashSet();
            Assert.Contains("/transformer/h.0/self_attention/query_key_value/MatMul", nodes);
            Assert.Contains("/transformer/h.1/mlp/dense_4h_to_h/Add", nodes);
            Assert.Contains("/transformer/ln_f/LayerNormalization", nodes);
            Assert.Equal(nodes.Count, model.Graph.Node.Count);
            var initializers = model.Graph.Initializer.ToDictionary(t => t.Name);
            Assert.Equal([64, 192], initializers["transformer.h.0.self_attention.query_key_value.weight"].Dims); // [in, out]
            Assert.Equal([1000, 64], initializers["transformer.word_embeddings.weight"].Dims);
            Assert.DoesNotContain("lm_head.weight", initializers.Keys); // tied: one table, Gemm(transB)
            Assert.Equal(["input_ids", "attention_mask", "past_key_values.0.key", "past_key_values.0.value", "past_key_values.1.key", "past_key_values.1.value", "num_logits_to_keep"],
                model.Graph.Input.Select(i => i.Name));
            NumLogitsToKeepChecks.AssertDefaultsToEveryPosition(model);
            Assert.Equal(["logits", "present.0.key", "present.0.value", "present.1.key", "present.1.value"], model.Graph.Output.Select(o => o.Name));
            Assert.Equal(["batch_size", "4", "past_sequence_length", "16"],
                model.Graph.Input[2].Type.TensorType.Shape.Dim.Select(d => d.HasDimParam ? d.DimParam : d.DimValue.ToString()));
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void Untied_lm_head_is_a_linear_layer()
    {
        // the fixture with tie_word_embeddings = false and lm_head.weight = a copy of the embeddings
        var source = Paths.Case("bloom", "base_model");
        var untied = Paths.TempDir("peft-onnx-untied");
        var dir = "";
        try
        {
            var config = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(source, "config.json")))!;
            config["tie_word_embeddings"] = false;
            File.WriteAllText(Path.Combine(untied, "config.json"), config.ToJsonString());
            using (var st = SafeTensorsFile.Open(Path.Combine(source, "model.safetensors")))
            {
                var tensors = st.Entries.Select(e => new TensorData(e.Name, e.DType, e.Shape, st.GetBytes(e.Name).ToArray())).ToList();
                var emb = st["transformer.word_embeddings.weight"];
                tensors.Add(new TensorData("lm_head.weight", emb.DType, emb.Shape, st.GetBytes(emb.Name).ToArray()));
                SafeTensorsWriter.Write(Path.Combine(untied, "model.safetensors"), tensors);
            }
            dir = TempExports.Base(untied);
            var model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(Path.Combine(dir, CausalLmContract.ModelFile)));
            Assert.Equal([64, 1000], model.Graph.Initializer.Single(t => t.Name == "lm_head.weight").Dims);
            Assert.Contains(model.Graph.Node, n => n.Name == "/lm_head/MatMul" && n.Output.Single() == "logits");

            using var reference = new Reference("bloom");
            using var expected = SafeTensorsFile.Open(Path.Combine(Paths.Case("bloom"), "base_reference.safetensors"));
            var mask = reference.Inputs.ReadInt64("attention_mask");
            using var runner = CausalLmForward.Open(Path.Combine(dir, CausalLmContract.ModelFile));
            var step = runner.Run(reference.Inputs.ReadInt64("input_ids"), mask, 2);
            Tolerance.AssertLogits(expected.ReadFloat32("logits"), step.Logits, runner.VocabSize, Tolerance.RowsFromMask(mask), "untied head logits");
        }
        finally
        {
            Directory.Delete(untied, true);
            if (dir.Length > 0) Directory.Delete(dir, true);
        }
    }
}
