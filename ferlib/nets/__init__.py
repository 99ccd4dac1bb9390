"""Networks: architectures, saving and loading models with their cards, classifiers, exports."""
