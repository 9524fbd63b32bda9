using static Peft.Onnx.Tests.Support.BatchSlices;
using System.Text.Json.Nodes;
using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.Families;
using Peft.Onnx.Core.SafeTensors;
using Peft.Onnx.Exporter;
using Peft.Onnx.Exporter.Graphs;
using Peft.Onnx.Exporter.Onnx;
using Peft.Onnx.Exporter.Onnx.Proto;
using Peft.Onnx.Tests.Support;
using Peft.Onnx.Trainer.Modeling;
using Peft.Onnx.Trainer.Models;
using Xunit;
using Xunit.Abstractions;
using static TorchSharp.torch;
using Peft.Onnx.Core.Onnx;
using Peft.Onnx.Runtime;

namespace Peft.Onnx.Tests.Exporter;

/// <summary>The exported T5/mT5 encoder + decoder graphs against transformers 4.33 (fixtures), the TorchSharp model, and themselves.</summary>
public class T5ExportTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData("t5")]
    [InlineData("mt5")]
    public void Fixture_logits_match_transformers(string arch)
    {
        var dir = TempExports.Base(Paths.Case(arch, "base_model"));
        try
        {
            using var reference = new Reference(arch);
            using var expected = SafeTensorsFile.Open(Path.Combine(Paths.Case(arch), "base_reference.safetensors"));
            var ids = reference.Inputs.ReadInt64("input_ids");
            var mask = reference.Inputs.ReadInt64("attention_mask");
            var labels = reference.Inputs.ReadInt64("labels");
            var batch = (int)reference.Shape("input_ids")[0];

            using var runner = Seq2SeqForward.Open(dir);
            var decoderIds = Seq2SeqForward.ShiftRight(labels, batch, decoderStartId: 0, padId: 0);
            var step = runner.Forward(ids, mask, decoderIds, batch);

            Assert.Equal(expected["logits"].Shape, step.LogitsShape);
            var reference32 = expected.ReadFloat32("logits");
            var rows = labels.Select(l => l != -100).ToArray();
            var maxDiff = reference32.Select((e, i) => rows[i / runner.VocabSize] ? Math.Abs(e - step.Logits[i]) : 0f).Max();
            output.WriteLine($"{arch} fixture: max |logit diff| on real tokens = {maxDiff:g3}");
            Tolerance.AssertLogits(reference32, step.Logits, runner.VocabSize, rows, $"{arch} onnx logits");
        }
        finally { Directory.Delete(dir, true); }
    }

    [Theory]
    [InlineData("t5")]
    [InlineData("mt5")]
    public void Fixture_greedy_generation_with_cache_matches_transformers(string arch)
    {
        var dir = TempExports.Base(Paths.Case(arch, "base_model"));
        try
        {
            using var reference = new Reference(arch);
            var expected = Reference.Rows(reference.BaseMeta.GetProperty("generated"))[0];
            var prompt = reference.Inputs.ReadInt64("gen_input_ids");
            var config = (T5Config)ModelConfig.Load(Paths.Case(arch, "base_model"));
            using var runner = Seq2SeqForward.Open(dir);
            var generated = runner.Greedy(prompt, Ones(prompt.Length), 1, expected.Length - 1, config.DecoderStartId,
                config.EosTokenId!.Select(e => (long)e).ToArray(), config.PadTokenId ?? 0);
            Assert.Equal(expected, generated[0]);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Theory]
    [InlineData("t5")]
    [InlineData("mt5")]
    public void Fixture_cached_decoding_equals_the_full_decoder_pass(string arch)
    {
        var dir = TempExports.Base(Paths.Case(arch, "base_model"));
        try
        {
            using var reference = new Reference(arch);
            using var runner = Seq2SeqForward.Open(dir);
            var encoded = runner.Encode(reference.Inputs.ReadInt64("input_ids"), reference.Inputs.ReadInt64("attention_mask"), 2);
            AssertCacheMatchesFull(runner, encoded, [0, 812, 247, 379, 402, 801, 369, /**/ 0, 610, 771, 902, 639, 995, 7], prefix: 3);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void Random_config_with_fewer_decoder_layers_and_a_wide_d_kv_matches_the_torch_model()
    {
        // num_decoder_layers < num_layers, d_kv != d_model / num_heads, gated-gelu, tied head, buckets that saturate
        // within the test's lengths (max_distance 12), so the far-distance buckets are exercised too.
        var config = new JsonObject
        {
            ["model_type"] = "t5", ["architectures"] = new JsonArray("T5ForConditionalGeneration"),
            ["vocab_size"] = 97, ["d_model"] = 24, ["d_kv"] = 10, ["d_ff"] = 40, ["num_layers"] = 3, ["num_decoder_layers"] = 2,
            ["num_heads"] = 3, ["relative_attention_num_buckets"] = 8, ["relative_attention_max_distance"] = 12,
            ["feed_forward_proj"] = "gated-gelu", ["dropout_rate"] = 0.0, ["layer_norm_epsilon"] = 1e-6,
            ["decoder_start_token_id"] = 0, ["pad_token_id"] = 0, ["eos_token_id"] = 1,
        };
        var source = RandomT5Checkpoint.Write(config, seed: 3);
        var dir = "";
        try
        {
            dir = TempExports.Base(source);
            var result = OnnxCheck.Seq2Seq(Path.Combine(dir, Seq2SeqContract.EncoderFile), Path.Combine(dir, Seq2SeqContract.DecoderFile));
            Assert.Equal((2, 3, 10, 24, 97), (result.NumDecoderLayers, result.NumHeads, result.HeadDim, result.DModel, result.VocabSize));

            const int batch = 2, sourceLength = 20, target = 18;
            var rng = new Random(5);
            var ids = Enumerable.Range(0, batch * sourceLength).Select(_ => (long)rng.Next(2, 97)).ToArray();
            var mask = Enumerable.Range(0, batch * sourceLength).Select(i => i >= sourceLength + 14 ? 0L : 1L).ToArray(); // row 2 right-padded
            var decoderIds = Enumerable.Range(0, batch * target).Select(i => i % target == 0 ? 0L : rng.Next(2, 97)).ToArray();

            using var runner = Seq2SeqForward.Open(dir);
            var onnx = runner.Forward(ids, mask, decoderIds, batch);
            var expected = TorchLogits(source, ids, mask, decoderIds, batch);
            var maxDiff = expected.Select((e, i) => Math.Abs(e - onnx.Logits[i])).Max();
            output.WriteLine($"random t5 vs TorchSharp: max |logit diff| = {maxDiff:g3}");
            Tolerance.AssertLogits(expected, onnx.Logits, runner.VocabSize, null, "random t5 logits");

            AssertCacheMatchesFull(runner, runner.Encode(ids, mask, batch), decoderIds, prefix: 1);
        }
        finally
        {
            Directory.Delete(source, true);
            if (dir.Length > 0) Directory.Delete(dir, true);
        }
    }

    [Fact]
    public void Tiny_t5_fin_exports_runs_and_caches()
    {
        var dir = TempExports.Base(Path.Combine(Paths.Models, "tiny-t5-fin"));
        try
        {
            foreach (var f in new[] { "encoder_model.onnx", "encoder_model.onnx.data", "decoder_model.onnx", "decoder_model.onnx.data", "config.json", "generation_config.json", "tokenizer.json" })
                Assert.True(File.Exists(Path.Combine(dir, f)), f);
            Assert.False(File.Exists(Path.Combine(dir, CausalLmContract.ModelFile)));

            using var runner = Seq2SeqForward.Open(dir);
            Assert.Equal((4, 4, 32, 256, 4000), (runner.NumDecoderLayers, runner.NumHeads, runner.HeadDim, runner.DModel, runner.VocabSize));
            long[] ids = [37, 1209, 19, 8, 167, 3, 7, 1, /**/ 100, 200, 300, 1, 0, 0, 0, 0];
            long[] mask = [1, 1, 1, 1, 1, 1, 1, 1, /**/ 1, 1, 1, 1, 0, 0, 0, 0];
            var encoded = runner.Encode(ids, mask, 2);
            Assert.All(encoded.LastHiddenState, v => Assert.True(float.IsFinite(v)));
            AssertCacheMatchesFull(runner, encoded, [0, 5, 17, 230, 9, 1, /**/ 0, 44, 3, 3, 8, 2], prefix: 2);

            var generated = runner.Greedy(ids, mask, 2, 8, 0, [1], 0);
            Assert.All(generated, row => Assert.Equal(0, row[0]));
            Assert.Equal(generated[0].Length, generated[1].Length);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void Graphs_follow_the_encoder_decoder_contract()
    {
        var dir = TempExports.Base(Paths.Case("mt5", "base_model"));
        try
        {
            var encoder = ModelProto.Parser.ParseFrom(File.ReadAllBytes(Path.Combine(dir, Seq2SeqContract.EncoderFile)));
            var decoder = ModelProto.Parser.ParseFrom(File.ReadAllBytes(Path.Combine(dir, Seq2SeqContract.DecoderFile)));
            Assert.Equal(["input_ids", "attention_mask"], encoder.Graph.Input.Select(i => i.Name));
            Assert.Equal(["last_hidden_state", "present.0.encoder.key", "present.0.encoder.value", "present.1.encoder.key", "present.1.encoder.value"],
                encoder.Graph.Output.Select(o => o.Name));
            Assert.Equal(["input_ids", "encoder_attention_mask",
                "past_key_values.0.decoder.key", "past_key_values.0.decoder.value", "past_key_values.0.encoder.key", "past_key_values.0.encoder.value",
                "past_key_values.1.decoder.key", "past_key_values.1.decoder.value", "past_key_values.1.encoder.key", "past_key_values.1.encoder.value"],
                decoder.Graph.Input.Select(i => i.Name));
            Assert.Equal(["logits", "present.0.decoder.key", "present.0.decoder.value", "present.1.decoder.key", "present.1.decoder.value"],
                decoder.Graph.Output.Select(o => o.Name));
            Assert.Equal(["batch_size", "4", "past_decoder_sequence_length", "16"], Dims(decoder.Graph.Input[2]));
            Assert.Equal(["batch_size", "4", "encoder_sequence_length", "16"], Dims(decoder.Graph.Input[4]));
            Assert.All(new[] { encoder, decoder }, m => Assert.Equal(17, m.OpsetImport.Single(o => o.Domain == "").Version));
            Assert.All(new[] { encoder, decoder }, m => Assert.DoesNotContain(m.Graph.Node, n => n.Domain.Length > 0));

            // Weights by HF name: the cross-attention k/v live in the encoder graph, q/o in the decoder; mT5's head is untied.
            var encoderWeights = encoder.Graph.Initializer.Select(t => t.Name).ToHashSet();
            var decoderWeights = decoder.Graph.Initializer.Select(t => t.Name).ToHashSet();
            Assert.Contains("decoder.block.1.layer.1.EncDecAttention.k.weight", encoderWeights);
            Assert.DoesNotContain("decoder.block.1.layer.1.EncDecAttention.k.weight", decoderWeights);
            Assert.Contains("decoder.block.1.layer.1.EncDecAttention.q.weight", decoderWeights);
            Assert.Contains("lm_head.weight", decoderWeights);
            Assert.Contains("encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight", encoderWeights);
            Assert.Contains("decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight", decoderWeights);
            Assert.Contains(decoder.Graph.Node, n => n.Name == "/lm_head/MatMul" && n.Output.Single() == "logits");
            Assert.Contains(encoder.Graph.Node, n => n.Name == "/encoder/block.0/layer.0/SelfAttention/q/MatMul");
        }
        finally { Directory.Delete(dir, true); }
    }

    [Theory]
    [InlineData(32, 128)]
    [InlineData(8, 12)]
    [InlineData(64, 300)]
    public void Bucket_table_equals_the_torch_relative_position_bucket(int numBuckets, int maxDistance)
    {
        using var scope = NewDisposeScope();
        var relative = arange(-2 * maxDistance - 5, 2 * maxDistance + 6, dtype: int64);
        foreach (var bidirectional in new[] { true, false })
        {
            var torchBuckets = T5ForConditionalGeneration.RelativePositionBucket(relative, bidirectional, numBuckets, maxDistance).data<long>().ToArray();
            var table = T5Graph.RelativePositionBucketTable(bidirectional, numBuckets, maxDistance);
            var positions = relative.data<long>().ToArray();
            for (int i = 0; i < positions.Length; i++)
            {
                var clamped = Math.Clamp(positions[i], -maxDistance, maxDistance);
                Assert.True(torchBuckets[i] == table[clamped + maxDistance], $"relative {positions[i]} bidirectional={bidirectional}: torch {torchBuckets[i]}, table {table[clamped + maxDistance]}");
            }
        }
    }

    // ------------------------------------------------------------------ helpers

    /// <summary>
    /// Runs the decoder over the whole <paramref name="decoderIds"/> [batch, T] at once, then again as a prefill of
    /// <paramref name="prefix"/> tokens, a chunk of two tokens after that past, and then one token at a time
    /// through the cache; the logits and the final cache must agree.
    /// </summary>
    private static void AssertCacheMatchesFull(Seq2SeqForward runner, Seq2SeqEncoderOutput encoded, long[] decoderIds, int prefix)
    {
        int batch = encoded.Batch, total = decoderIds.Length / batch, vocab = runner.VocabSize;
        var full = runner.Decode(decoderIds, encoded);
        Assert.Equal([batch, total, vocab], full.LogitsShape);
        var step = runner.Decode(Columns(decoderIds, batch, total, 0, prefix), encoded);
        AssertPositions(full.Logits, step.Logits, batch, total, 0, prefix, vocab);
        for (int t = prefix; t < total;)
        {
            int end = t == prefix ? Math.Min(total, t + 2) : t + 1;
            step = runner.Decode(Columns(decoderIds, batch, total, t, end), encoded, step.Present);
            AssertPositions(full.Logits, step.Logits, batch, total, t, end, vocab);
            t = end;
        }
        Assert.Equal(total, step.Present.Length);
        for (int i = 0; i < runner.NumDecoderLayers; i++)
        {
            Tolerance.AssertLogits(full.Present.Keys[i], step.Present.Keys[i], runner.HeadDim, null, $"present.{i}.decoder.key");
            Tolerance.AssertLogits(full.Present.Values[i], step.Present.Values[i], runner.HeadDim, null, $"present.{i}.decoder.value");
        }
    }

    /// <summary>Logits of the TorchSharp T5 (the trainer's transformers port) for the same checkpoint and inputs.</summary>
    private static float[] TorchLogits(string modelDir, long[] ids, long[] mask, long[] decoderIds, int batch)
    {
        using var model = (T5ForConditionalGeneration)ModelLoader.Load(modelDir);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var input = new Seq2SeqLmInput(
            tensor(ids, [batch, ids.Length / batch]), tensor(mask, [batch, mask.Length / batch]),
            DecoderInputIds: tensor(decoderIds, [batch, decoderIds.Length / batch]));
        return model.Forward(input).Logits.contiguous().data<float>().ToArray();
    }

    private static string[] Dims(ValueInfoProto v) =>
        v.Type.TensorType.Shape.Dim.Select(d => d.HasDimParam ? d.DimParam : d.DimValue.ToString()).ToArray();
}
