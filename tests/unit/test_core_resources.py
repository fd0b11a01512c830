from localbatch.core.resources import Resources, Shortfall, shortfall


def test_arithmetic_is_exact_in_thousandths_of_a_vcpu():
    total = Resources(0.1, 10) + Resources(0.2, 20)
    assert total == Resources(0.3, 30)
    assert total - Resources(0.3, 30) == Resources(0, 0)


def test_fits_within_and_shortfall_names_the_resource_and_numbers():
    free = Resources(vcpus=2, memory_mib=4096, gpus=1)
    assert Resources(2, 4096, 1).fits_within(free)
    assert shortfall(Resources(4, 100), free) == Shortfall("vcpus", 4, 2)
    assert str(shortfall(Resources(4, 100), free)) == "needs 4 vCPU, 2 vCPU available"
    assert str(shortfall(Resources(1, 8192), free)) == "needs 8192 MiB memory, 4096 MiB memory available"
    assert str(shortfall(Resources(0.5, 1, 2), free)) == "needs 2 GPU, 1 GPU available"


def test_gpus_are_reported_before_vcpus_and_memory():
    assert shortfall(Resources(99, 99999, 5), Resources(1, 1, 0)).resource == "gpus"


def test_fractional_numbers_print_without_noise():
    assert str(Shortfall("vcpus", 0.25, 0.1)) == "needs 0.25 vCPU, 0.1 vCPU available"
