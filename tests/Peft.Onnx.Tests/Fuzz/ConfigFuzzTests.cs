using Peft.Onnx.Core.Architectures;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.Families;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Tests.Support;
using Xunit;
using Xunit.Abstractions;

namespace Peft.Onnx.Tests.Fuzz;

/// <summary>Mutated config.json files: each must parse (and validate) or fail with a one-line PeftOnnxException.</summary>
public class ModelConfigFuzzTests(ITestOutputHelper output)
{
    [Fact]
    public void Fuzz_config_json()
    {
        var seeds = Seeds.Named("config.json").Where(b => b.Length > 0 && b[0] == (byte)'{').ToList();
        Assert.NotEmpty(seeds);
        new FuzzRunner("config.json", output).Run(
            (r, i) => i % 500 == 7 ? Mutator.HugeJson(seeds.Pick(r), r) : Mutator.Json(seeds.Pick(r), r),
            bytes =>
            {
                var c = ModelConfig.Parse(bytes, "config.json");
                _ = c.Dimensions;
                _ = c.TiesWordEmbeddings;
                if (c is T5Config t5) _ = (t5.DenseActFn, t5.IsGatedAct, t5.DecoderStartId);
                _ = GenerationConfig.FromModelConfig(c);
                // What `inspect --base DIR` does with a config alone: the module tree and its parameter count (every
                // accepted config: layer counts are capped at ModelConfig.MaxLayers when it loads).
                var arch = Architecture.For(c);
                _ = (arch.CountParameters(), arch.Linears.Count, arch.WordEmbeddings, arch.OutputHead, arch.ClassName);
            },
            bytes => bytes.Length);
    }
}

/// <summary>Mutated generation_config.json files, loaded as GenerationConfig.TryLoad does from a folder.</summary>
public class GenerationConfigFuzzTests(ITestOutputHelper output)
{
    [Fact]
    public void Fuzz_generation_config_json()
    {
        var seeds = Seeds.Named(GenerationConfig.FileName);
        Assert.NotEmpty(seeds);
        var dir = Seeds.TempDir("generation");
        try
        {
            var path = Path.Combine(dir, GenerationConfig.FileName);
            new FuzzRunner("generation_config.json", output).Run(
                (r, i) =>
                {
                    var bytes = i % 500 == 7 ? Mutator.HugeJson(seeds.Pick(r), r) : Mutator.Json(seeds.Pick(r), r);
                    File.WriteAllBytes(path, bytes);
                    return bytes;
                },
                _ => GenerationConfig.TryLoad(dir),
                bytes => bytes.Length);
        }
        finally { Directory.Delete(dir, recursive: true); }
    }
}

/// <summary>Mutated adapter_config.json files: parse, validate, and write back (Save's text).</summary>
public class AdapterConfigFuzzTests(ITestOutputHelper output)
{
    [Fact]
    public void Fuzz_adapter_config_json()
    {
        var seeds = Seeds.Named(AdapterConfig.FileName);
        Assert.NotEmpty(seeds);
        // The real base configs of the fixtures: an adapter that parses is placed on one as `inspect --adapter` does.
        var archs = Paths.Archs.Select(a => Architecture.For(ModelConfig.Load(Path.Combine(Paths.Case(a), "base_model")))).ToList();
        new FuzzRunner("adapter_config.json", output).Run(
            (r, i) => (Bytes: i % 500 == 7 ? Mutator.HugeJson(seeds.Pick(r), r) : Mutator.Json(seeds.Pick(r), r), Arch: archs.Pick(r)),
            input =>
            {
                var c = AdapterConfig.Parse(input.Bytes, "adapter_config.json");
                _ = c.ToJson();
                _ = c.CountParameters(input.Arch);
                _ = c.PreparedFor(input.Arch).ToJson();
            },
            input => input.Bytes.Length);
    }
}
