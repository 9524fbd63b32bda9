using System.Runtime.CompilerServices;

[assembly: InternalsVisibleTo("Peft.Onnx.Tests")]
