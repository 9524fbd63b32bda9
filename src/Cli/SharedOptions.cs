namespace Peft.Onnx.Cli;

/// <summary>Options several verbs accept with the same meaning.</summary>
public static class SharedOptions
{
    public static readonly VerbOption Json = VerbOption.Flag("json", "print one JSON object on stdout (logs stay on stderr)");

    public static readonly VerbOption Device = VerbOption.Value("device", "cpu|cuda|auto", "where the model runs", "auto");

    public static readonly VerbOption Tf32 = VerbOption.Flag("tf32", "let CUDA run float32 products in TF32 (faster on large models, ~1e-3 relative error)");

    public static readonly VerbOption Verbose = VerbOption.Flag("verbose", "print the stack trace of an error");

    public static VerbOption Base(string what = "the Hugging Face model folder") => VerbOption.Value("base", "DIR", what);

    public static VerbOption Adapter(string what = "the PEFT adapter folder") => VerbOption.Value("adapter", "DIR", what);
}
